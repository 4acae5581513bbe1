"""Evidence end to end: a real scan of a pirate HLS stream stores its artefacts; the match's
bundle is exported over HTTP, verifies (``vigie evidence verify``), and fails naming the
file once one byte of a segment, a frame or the manifest is changed; reviews append
signed entries without touching the manifest; a forged entry fails; the key is made
once; a killed attempt's leftovers are replaced; unknown matches and scans without
artefacts get problems."""

import hashlib
import io
import json
import os
import shutil
import threading
import wave
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.app import create_app
from service.evidence import ScanArtefacts, scan_folder, verify_bundle
from service.evidence.files import canonical_json
from service.evidence.manifest import match_folder
from service.evidence.signing import load_or_create_key
from service.jobs import run_scan
from service.keys import create_key
from service.models import IncidentRow, MatchRow, ScanRow
from service.scans import new_scan
from service.settings import Settings
from tests.fingerprinting.capture.hls_media import make_source, segment, serve_vod
from tests.fingerprinting.capture.servers import LoopbackServer, static


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def channel(vigie, tmp_path_factory):
    """Channel tv1 indexed from a 30 s A/V recording, and that recording cut into 2 s HLS
    segments (the pirate's copy)."""
    root = tmp_path_factory.mktemp("evidence")
    data = root / "data"
    recording = make_source(root / "tv1.ts", 30.0, seed=77)
    vigie(data, "channels", "add", "tv1", "--name", "TV One", "--owner", "TV One SA")
    vigie(data, "reindex", "tv1", str(recording))
    return data, segment(recording, root / "hls", 2.0)


@pytest.fixture(scope="module")
def service(channel):
    """The app (embedded back end) and the pirate's server; one scan of the pirate stream,
    done: ``(client, analyst headers, runtime, media, server, scan id, match id)``."""
    data, media = channel
    settings = Settings(
        data_dir=data,
        allow_networks="127.0.0.0/8",
        scan_seconds=6.0,
        confirm_after_seconds=3600.0,  # no second sample within the tests
        worker_threads=2,
        match_processes=1,  # as deployed: candidates (and their pairs) cross processes
        capture_deadline_seconds=30.0,
    )
    app = create_app(settings)
    rt = app.state.runtime
    _, bot = create_key(rt.db, "bot", ["scans:write"])
    _, analyst = create_key(rt.db, "analyst-anne", ["matches:read", "matches:review"])
    bot_h, analyst_h = ({"Authorization": f"Bearer {t}"} for t in (bot, analyst))
    with LoopbackServer() as server, TestClient(app) as client:
        url = serve_vod(server, media)
        scan = client.post("/v1/scans", headers=bot_h, json={"url": url}).json()
        done = _wait_done(client, bot_h, scan["id"])
        assert done["verdict"] in ("suspected", "confirmed") and done["channel_id"] == "tv1"
        matches = client.get("/v1/matches", headers=analyst_h, params={"channel_id": "tv1"}).json()[
            "items"
        ]
        (match,) = [m for m in matches if m["scan_id"] == scan["id"]]
        yield client, analyst_h, rt, media, server, scan["id"], match["id"]


def _wait_done(client, headers, scan_id, timeout=90.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scan = client.get(f"/v1/scans/{scan_id}", headers=headers).json()
        if scan["status"] in ("done", "failed"):
            return scan
        time.sleep(0.2)
    raise AssertionError(f"scan {scan_id} did not finish: {scan}")


def _export(client, headers, match_id) -> bytes:
    got = client.get(f"/v1/matches/{match_id}/evidence.zip", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert f"vigie-match-{match_id}-evidence.zip" in got.headers["content-disposition"]
    assert int(got.headers["content-length"]) == len(got.content)
    return got.content


def _unzip(bundle: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        zf.extractall(folder)
    return folder


def _zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())
    return out


def _flip_one_byte(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _review(client, headers, match_id, decision, note):
    got = client.post(
        f"/v1/matches/{match_id}/review", headers=headers, json={"decision": decision, "note": note}
    )
    assert got.status_code == 201, got.text
    return got.json()


def test_the_scan_stored_its_artefacts_per_the_contract(service):
    _, _, rt, media, _, scan_id, _ = service
    stored = ScanArtefacts.open(rt.settings, scan_id)
    assert stored is not None
    files = stored.files()
    for must in ("capture/evidence.json", "sample/audio.wav", "alignment.json", "match.json"):
        assert must in files
    record = stored.read_json("capture/evidence.json")
    with rt.db.session() as s:
        row = s.get(ScanRow, scan_id)
        assert record["sealed_sha256"] == _sha(canonical_json(row.evidence_sealed))
        assert stored.read_json("match.json")["decision"]["verdict"] == row.verdict
    # playlists as received, segments byte for byte as served (under the 16 MiB cap)
    playlists = [f for f in files if f.startswith("capture/playlists/")]
    assert playlists and all(
        _sha(stored.path(f).read_bytes()) == record["playlists"][int(f[-8:-5])]["sha256"]
        for f in playlists
    )
    segments = [f for f in files if f.startswith("capture/segments/")]
    assert len(segments) == len(record["ranges"]) >= 3
    for f in segments:
        rng = record["ranges"][int(Path(f).stem)]
        data = stored.path(f).read_bytes()
        assert f.endswith(".ts") and rng["kept_bytes"] == rng["length"] == len(data)
        assert data == media.segments[rng["media_sequence"]]
    with wave.open(str(stored.path("sample/audio.wav"))) as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        assert 5.5 <= w.getnframes() / 8000 <= 6.1
    frames = stored.suspect_frames()
    assert len(frames) >= 10 and frames == sorted(frames)
    assert all(rel.startswith("sample/frames/q_") for _, rel in frames)
    alignment = stored.alignment("tv1")
    assert alignment is not None
    part = alignment["audio"] or alignment["video"]
    assert len(part["query_seconds"]) == len(part["reference_seconds"]) > 5
    refs = stored.reference_frames("tv1")
    assert refs, "reference frames at the matched offsets"
    for q, r, rel in refs:
        assert rel.startswith("reference/tv1/r_") and abs(r - q) < 0.6  # VOD copy: offset 0
        assert stored.path(rel).read_bytes()[:2] == b"\xff\xd8"  # JPEG
    assert stored.read_json("params.json")["audio"]["sample_rate"] == 8000
    with pytest.raises(KeyError):
        stored.path("../../vigie.db")
    with pytest.raises(KeyError):
        stored.path("capture")


def test_the_bundle_verifies_and_one_changed_byte_fails_naming_the_file(service, vigie, tmp_path):
    client, analyst_h, rt, _, _, _, match_id = service
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(_export(client, analyst_h, match_id))
    pem = client.get("/v1/evidence/public-key", headers=analyst_h)
    assert pem.status_code == 200 and pem.headers["content-type"] == "application/x-pem-file"
    (tmp_path / "key.pem").write_bytes(pem.content)

    ok = vigie(
        rt.settings.data_dir,
        "evidence",
        "verify",
        str(bundle),
        "--public-key",
        str(tmp_path / "key.pem"),
    )
    assert ok.stdout.startswith("OK ") and f"match {match_id}" in ok.stdout
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert manifest["match_id"] == match_id and manifest["channel_id"] == "tv1"
    assert manifest["fingerprint_params"]["audio"]["sample_rate"] == 8000
    assert manifest["signing_key"]["public_key_sha256"] == pem.headers["x-key-sha256"]
    assert manifest["capture"]["started_utc"] and manifest["capture"]["finished_utc"]
    listed = {a["path"] for a in manifest["artefacts"]}
    assert {"record/match.json", "record/review_log.json", "match.json"} <= listed

    folder = _unzip(bundle.read_bytes(), tmp_path / "clean")
    assert verify_bundle(folder).ok  # an unzipped bundle verifies as well
    segment = next(p for p in sorted(listed) if p.startswith("capture/segments/"))
    frame = next(p for p in sorted(listed) if p.startswith("sample/frames/"))
    for name in (segment, frame, "manifest.json"):
        work = tmp_path / name.replace("/", "_")
        shutil.copytree(folder, work)
        _flip_one_byte(work / name)
        altered = _zip(work, tmp_path / f"{work.name}.zip")
        result = verify_bundle(altered)
        assert not result.ok and any(p.startswith(f"{name}:") for p in result.problems), (
            name,
            result.problems,
        )
        assert not verify_bundle(work).ok
    bad = vigie(
        rt.settings.data_dir,
        "evidence",
        "verify",
        str(tmp_path / f"{segment.replace('/', '_')}.zip"),
        check=False,
    )
    assert bad.returncode == 1
    assert f"{segment}: SHA-256 does not match the manifest" in bad.stderr

    # a file slipped in, and a file that is not a zip at all
    extra = tmp_path / "extra"
    shutil.copytree(folder, extra)
    (extra / "capture" / "note.txt").write_text("added later")
    assert "capture/note.txt: not listed in the manifest" in verify_bundle(extra).problems
    (tmp_path / "not.zip").write_text("hello")
    nozip = vigie(
        rt.settings.data_dir, "evidence", "verify", str(tmp_path / "not.zip"), check=False
    )
    assert nozip.returncode == 2 and "not a zip file" in nozip.stderr
    assert len(nozip.stderr.strip().splitlines()) == 1 and "Traceback" not in nozip.stderr
    # another installation's key
    other = tmp_path / "other.pem"
    other.write_bytes(load_or_create_key(tmp_path / "other-key.pem").public_pem)
    wrong = verify_bundle(bundle, other.read_bytes())
    assert any(p.startswith("public_key.pem:") for p in wrong.problems)


def test_the_manifest_is_made_once_and_reviews_append_signed_entries(service, tmp_path):
    client, analyst_h, rt, _, _, _, match_id = service
    first = _export(client, analyst_h, match_id)
    assert _export(client, analyst_h, match_id) == first  # the same bytes every time
    manifest = zipfile.ZipFile(io.BytesIO(first)).read("manifest.json")
    before = [n for n in zipfile.ZipFile(io.BytesIO(first)).namelist() if n.startswith("reviews/")]

    audit = _review(client, analyst_h, match_id, "confirm", "logo visible at 00:03")
    # signed by the review itself, not only at the next export
    n = len(before) // 2
    assert (match_folder(rt.settings, match_id) / "reviews" / f"{n + 1:04d}.json").is_file()
    _review(client, analyst_h, match_id, "dismiss", "licensed after all")
    after = zipfile.ZipFile(io.BytesIO(_export(client, analyst_h, match_id)))
    assert after.read("manifest.json") == manifest  # never rewritten
    names = [n for n in after.namelist() if n.startswith("reviews/")]
    assert len(names) == len(before) + 4  # two entries, each .json + .sig
    one = json.loads(after.read(f"reviews/{n + 1:04d}.json"))
    two = json.loads(after.read(f"reviews/{n + 2:04d}.json"))
    assert one["audit_id"] == audit["id"] and one["action"] == "review.confirm"
    assert one["note"] == "logo visible at 00:03" and one["reviewer"] == "analyst-anne"
    assert one["manifest_sha256"] == _sha(manifest)
    assert two["previous_sha256"] == _sha(after.read(f"reviews/{n + 1:04d}.json"))
    assert two["state"] == "dismissed" and two["reviewed_utc"].endswith("Z")
    path = tmp_path / "reviewed.zip"
    path.write_bytes(_export(client, analyst_h, match_id))
    result = verify_bundle(path)
    assert result.ok, result.problems
    assert result.reviews == n + 2


def test_a_forged_review_entry_fails(service, tmp_path):
    client, analyst_h, _, _, _, _, match_id = service
    _export(client, analyst_h, match_id)  # sealed: reviews from now on are signed entries
    _review(client, analyst_h, match_id, "confirm", "first look")
    _review(client, analyst_h, match_id, "confirm", "second look")
    folder = _unzip(_export(client, analyst_h, match_id), tmp_path / "b")
    entries = sorted((folder / "reviews").glob("*.json"))
    assert len(entries) >= 2 and verify_bundle(folder).ok
    last = entries[-1]

    # the note changed and signed again with a key of the forger's own
    forged = tmp_path / "forged"
    shutil.copytree(folder, forged)
    target = forged / "reviews" / last.name
    entry = json.loads(target.read_text())
    entry["note"] = "never mind, it was licensed"
    target.chmod(0o644)
    target.write_bytes(json.dumps(entry, indent=2).encode())
    sig = target.with_suffix(".sig")
    sig.chmod(0o644)
    sig.write_bytes(Ed25519PrivateKey.generate().sign(target.read_bytes()))
    problems = verify_bundle(forged).problems
    assert f"reviews/{last.name}: the signature in reviews/{last.stem}.sig does not match" in (
        problems
    )

    # an entry removed from the middle of the chain
    cut = tmp_path / "cut"
    shutil.copytree(folder, cut)
    middle = entries[-2]
    (cut / "reviews" / middle.name).unlink()
    (cut / "reviews" / f"{middle.stem}.sig").unlink()
    problems = verify_bundle(cut).problems
    assert any(p.startswith(f"reviews/{last.name}:") for p in problems), problems


def test_the_key_is_made_once_with_mode_0600_and_reused(service, tmp_path):
    client, analyst_h, rt, _, _, _, match_id = service
    _export(client, analyst_h, match_id)  # sealing signs: the key exists from then on
    path = rt.settings.evidence_key_path
    assert path == rt.settings.data_dir / "keys" / "evidence-ed25519.pem"
    before = path.read_bytes()
    assert (path.stat().st_mode & 0o777) == 0o600
    one = client.get("/v1/evidence/public-key", headers=analyst_h).content
    two = client.get("/v1/evidence/public-key", headers=analyst_h).content
    assert one == two and path.read_bytes() == before
    # many first uses at once still make one key
    fresh = tmp_path / "keys" / "k.pem"
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(load_or_create_key(fresh).public_pem))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and load_or_create_key(fresh).public_pem == got[0]
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["k.pem"]  # no temporary left
    fresh.chmod(0o600)
    fresh.write_text("not a key")
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_or_create_key(fresh)


def test_a_killed_attempts_leftovers_are_replaced_and_a_done_scan_is_kept(service):
    client, analyst_h, rt, media, server, _, _ = service
    url = serve_vod(server, media, name="again")
    with rt.db.session() as s:
        row = new_scan(
            url,
            seconds=6.0,
            modalities=["audio", "video"],
            callback_url=None,
            labels=None,
            key_id=None,
        )
        s.add(row)
        s.flush()
        scan_id = row.id
    # attempt 1 died while staging; an attempt died after publishing, before its commit
    staging = scan_folder(rt.settings, scan_id).parent / ".staging"
    (staging / f"{scan_id}.1").mkdir(parents=True)
    (staging / f"{scan_id}.1" / "half-written.ts").write_bytes(b"\x47" * 100)
    final = scan_folder(rt.settings, scan_id)
    (final / "capture").mkdir(parents=True)
    (final / "capture" / "evidence.json").write_text("{}")
    (final / "stale.txt").write_text("left by a dead attempt")

    run_scan(rt, scan_id)
    with rt.db.session() as s:
        done = s.get(ScanRow, scan_id)
        assert done.status == "done" and done.attempts == 1
    stored = ScanArtefacts.open(rt.settings, scan_id)
    assert "stale.txt" not in stored.files()
    assert stored.read_json("capture/evidence.json")["requested_url"] == url
    assert not list(staging.glob(f"{scan_id}.*"))
    listing = {f: os.stat(stored.path(f)).st_mtime_ns for f in stored.files()}

    run_scan(rt, scan_id)  # a late duplicate message: the done scan is left alone
    again = ScanArtefacts.open(rt.settings, scan_id)
    assert {f: os.stat(again.path(f)).st_mtime_ns for f in again.files()} == listing


def test_an_unreachable_stream_keeps_its_capture_record(service):
    _, _, rt, _, server, _, _ = service
    server.route("/gone.m3u8", static(b"nope", "text/plain", status=404))
    with rt.db.session() as s:
        row = new_scan(
            server.url("/gone.m3u8"),
            seconds=6.0,
            modalities=["audio"],
            callback_url=None,
            labels=None,
            key_id=None,
        )
        s.add(row)
        s.flush()
        scan_id = row.id
    run_scan(rt, scan_id)
    stored = ScanArtefacts.open(rt.settings, scan_id)
    assert stored is not None
    assert stored.read_json("capture/evidence.json")["hops"][0]["status"] == 404
    decision = stored.read_json("match.json")["decision"]
    assert decision["verdict"] == "unreachable" and decision["reason"] == "http_status"
    assert not [f for f in stored.files() if f.startswith("sample/")]


def test_a_stream_that_matched_nothing_keeps_its_record_but_not_its_media(service, tmp_path):
    """Most scans are of streams that are not ours: their media would fill the disk."""
    client, _, rt, _, server, _, _ = service
    stranger = segment(make_source(tmp_path / "other.ts", 12.0, seed=5), tmp_path / "hls", 2.0)
    url = serve_vod(server, stranger, name="stranger")
    _, bot = create_key(rt.db, "bot-2", ["scans:write"])
    headers = {"Authorization": f"Bearer {bot}"}
    scan = client.post("/v1/scans", headers=headers, json={"url": url}).json()
    done = _wait_done(client, headers, scan["id"])
    assert done["verdict"] == "no_match"
    stored = ScanArtefacts.open(rt.settings, scan["id"])
    files = stored.files()
    assert "capture/evidence.json" in files and "match.json" in files
    assert any(f.startswith("capture/playlists/") for f in files)
    assert not [f for f in files if f.startswith(("capture/segments/", "sample/", "reference/"))]


def test_unknown_match_is_404_and_a_scan_without_artefacts_is_409(service):
    client, analyst_h, rt, _, _, _, _ = service
    got = client.get("/v1/matches/999999/evidence.zip", headers=analyst_h)
    assert got.status_code == 404 and got.headers["content-type"] == "application/problem+json"
    assert "no match 999999" in got.json()["detail"]
    # a match recorded before artefacts were kept
    now = datetime.now(UTC)
    with rt.db.session() as s:
        scan = new_scan(
            "http://old.example/live.ts",
            seconds=10.0,
            modalities=["audio"],
            callback_url=None,
            labels=None,
            key_id=None,
        )
        scan.status, scan.verdict = "done", "suspected"
        s.add(scan)
        s.flush()
        incident = IncidentRow(
            host="old.example",
            channel_id="tv1",
            simulcast_group="tv1",
            owner=None,
            verdict="suspected",
            confidence=0.995,
            first_seen=now,
            last_seen=now,
            matches=1,
        )
        s.add(incident)
        s.flush()
        match = MatchRow(
            scan_id=scan.id,
            incident_id=incident.id,
            channel_id="tv1",
            simulcast_group="tv1",
            owner=None,
            host="old.example",
            verdict="suspected",
            confidence=0.995,
            reference="asset",
            offset_seconds=3.0,
            data={},
            created_at=now,
        )
        s.add(match)
        s.flush()
        old_match, old_scan = match.id, scan.id
    got = client.get(f"/v1/matches/{old_match}/evidence.zip", headers=analyst_h)
    assert got.status_code == 409 and got.headers["content-type"] == "application/problem+json"
    assert (
        f"scan {old_scan}" in got.json()["detail"]
        and "no stored artefacts" in (got.json()["detail"])
    )
    # reviewing it still works (nothing to sign: the match cannot be sealed)
    _review(client, analyst_h, old_match, "confirm", "old case")


def test_the_routes_declare_their_content_types(service):
    client, _, _, _, _, _, _ = service
    paths = client.get("/openapi.json").json()["paths"]
    zip_ok = paths["/v1/matches/{match_id}/evidence.zip"]["get"]["responses"]
    assert list(zip_ok["200"]["content"]) == ["application/zip"]
    assert "application/problem+json" in zip_ok["409"]["content"]
    assert "application/problem+json" in zip_ok["404"]["content"]
    key_ok = paths["/v1/evidence/public-key"]["get"]["responses"]
    assert list(key_ok["200"]["content"]) == ["application/x-pem-file"]


def test_reference_times_of_a_bare_layout_come_from_the_match_or_the_alignment(tmp_path):
    settings = Settings(data_dir=tmp_path)
    root = scan_folder(settings, 7)
    (root / "reference" / "tv1").mkdir(parents=True)
    for name in ("r_1000.jpg", "r_3000.jpg"):
        (root / "reference" / "tv1" / name).write_bytes(b"\xff\xd8")
    alignment = {
        "tv1": {
            "audio": None,
            "video": {"query_seconds": [1.0, 3.0], "reference_seconds": [101.0, 103.0]},
        }
    }
    (root / "alignment.json").write_text(json.dumps(alignment))
    got = ScanArtefacts.open(settings, 7).reference_frames("tv1")
    assert got == [
        (1.0, 101.0, "reference/tv1/r_1000.jpg"),
        (3.0, 103.0, "reference/tv1/r_3000.jpg"),
    ]
    match = {"matches": [{"channel_id": "tv1", "offset_seconds": 50.0, "speed": 1.04}]}
    (root / "match.json").write_text(json.dumps(match))
    got = ScanArtefacts.open(settings, 7).reference_frames("tv1")
    assert [round(r, 3) for _, r, _ in got] == [51.04, 53.12]
    assert ScanArtefacts.open(settings, 7).reference_frames("../tv1") == []
    assert ScanArtefacts.open(settings, 8) is None
