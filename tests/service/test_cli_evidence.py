"""``vigie evidence verify`` on bundles made here from a synthetic scan (no stream, no
database): the exit codes and the one line per problem that name the file."""

import zipfile
from datetime import UTC, datetime

import numpy as np
import pytest

from fingerprinting.capture import Evidence, Sample
from fingerprinting.params import AudioParams, VideoParams
from fingerprinting.types import FrameBatch
from service.evidence.bundle import write_bundle
from service.evidence.manifest import MatchFacts, seal_match
from service.evidence.reviews import append_reviews
from service.evidence.signing import load_or_create_key
from service.evidence.writer import fingerprint_params, scan_record, stage_scan
from service.settings import Settings

#: Four MPEG-TS packets (188 bytes, sync byte 0x47): 752 bytes of "segment".
TS = (b"\x47" + bytes(187)) * 4


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A sealed match of a synthetic scan with one review, zipped; and its key's PEM."""
    root = tmp_path_factory.mktemp("cli-evidence")
    settings = Settings(data_dir=root / "data")
    evidence = Evidence(requested_url="http://pirate.example/live.m3u8", keep_bytes=1000)
    evidence.add_playlist("http://pirate.example/live.m3u8", b"#EXTM3U\n#EXTINF:2,\nseg0.ts\n")
    evidence.add_range("http://pirate.example/seg0.ts", "segment", TS)
    evidence.add_range("http://pirate.example/seg1.ts", "segment", TS)
    gray = np.random.default_rng(1).integers(0, 255, (3, 36, 64), dtype=np.uint8)
    now = datetime.now(UTC)
    sample = Sample(
        pcm=np.sin(np.arange(16000) / 5.0).astype(np.float32) * 0.5,
        sample_rate=8000,
        frames=FrameBatch(np.array([0.0, 0.5, 1.0]), gray),
        started_utc=now,
        ended_utc=now,
        kind="hls",
        evidence=evidence,
    )
    staged = stage_scan(
        settings,
        41,
        1,
        evidence=evidence,
        record=scan_record({"verdict": "match", "matches": []}, "suspected"),
        params=fingerprint_params(AudioParams(), VideoParams()),
        sample=sample,
    )
    staged.publish()
    key = load_or_create_key(settings.evidence_key_path)
    facts = MatchFacts(41, 41, "tv1", "suspected", "suspected", {"id": 41}, [])
    sealed = seal_match(settings, facts, key)
    review = {
        "id": 7,
        "at": "2026-01-02T03:04:05Z",
        "actor": "k1",
        "action": "review.confirm",
        "note": "seen",
        "data": {"state": "confirmed", "key_name": "anne"},
    }
    assert append_reviews(sealed, key, [review]) == 1
    assert append_reviews(sealed, key, [review]) == 0  # once per review
    path = root / "bundle.zip"
    with open(path, "wb") as out:
        write_bundle(sealed, out)
    pem = root / "key.pem"
    pem.write_bytes(key.public_pem)
    return path, pem, settings


def test_a_sound_bundle_verifies_with_its_key_pinned(vigie, bundle):
    path, pem, settings = bundle
    names = zipfile.ZipFile(path).namelist()
    assert names[:3] == ["manifest.json", "manifest.sig", "public_key.pem"]
    assert names[-2:] == ["reviews/0001.json", "reviews/0001.sig"]
    assert "capture/segments/000.ts" in names and "capture/segments/001.ts" in names
    assert "sample/audio.wav" in names and "sample/frames/q_500.jpg" in names
    done = vigie(settings.data_dir, "evidence", "verify", str(path), "--public-key", str(pem))
    assert done.stdout.startswith("OK ") and "1 review entries" in done.stdout
    assert "match 41 (scan 41, channel tv1, suspected)" in done.stdout


def test_a_truncated_segment_is_kept_and_listed(bundle):
    path, _, _ = bundle
    zf = zipfile.ZipFile(path)
    assert zf.read("capture/segments/000.ts") == TS
    assert zf.read("capture/segments/001.ts") == TS[:248]  # truncated at the 1000-byte cap


def test_each_problem_is_one_line_naming_the_file_and_the_exit_is_1(vigie, bundle, tmp_path):
    path, _, settings = bundle
    src = zipfile.ZipFile(path)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "sample/frames/q_0.jpg":
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            if info.filename == "reviews/0001.sig":
                continue  # a signature lost
            out.writestr(info.filename, data)
        out.writestr("extra.txt", b"smuggled")
    got = vigie(settings.data_dir, "evidence", "verify", str(bad), check=False)
    assert got.returncode == 1
    lines = got.stderr.strip().splitlines()
    assert "FAIL sample/frames/q_0.jpg: SHA-256 does not match the manifest" in lines
    assert "FAIL extra.txt: not listed in the manifest" in lines
    assert "FAIL reviews/0001.sig: missing (its pair is there)" in lines
    assert lines[-1].endswith("does not verify (3 problems)")


def test_a_bad_public_key_file_is_a_one_line_error(vigie, bundle, tmp_path):
    path, _, settings = bundle
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    got = vigie(
        settings.data_dir, "evidence", "verify", str(path), "--public-key", str(junk), check=False
    )
    assert got.returncode == 2 and "junk.pem: not a PEM public key" in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    missing = vigie(
        settings.data_dir, "evidence", "verify", str(tmp_path / "none.zip"), check=False
    )
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr
