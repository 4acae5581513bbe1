"""The `vigie` CLI contract, run as a user would: a subprocess per command."""

import json

import numpy as np
import pytest

from service.media import change_speed, synth_programme, write_audio

SR = 22050


@pytest.fixture(scope="module")
def indexed(vigie, tmp_path_factory):
    """A data folder with two channels indexed from synthetic recordings."""
    root = tmp_path_factory.mktemp("cli")
    data, media = root / "data", root / "media"
    media.mkdir()
    programmes = {}
    for i, ch in enumerate(["news", "sport"]):
        y = synth_programme(120.0, seed=100 + i, sr=SR)
        programmes[ch] = y
        write_audio(media / f"{ch}.flac", y, SR)
    vigie(data, "channels", "add", "news", "--name", "News 24", "--owner", "Canal")
    vigie(data, "channels", "add", "sport", "--name", "Sport", "--group", "sport-hd")
    vigie(data, "reindex", "news", str(media / "news.flac"))
    vigie(data, "reindex", "sport", str(media / "sport.flac"), "--jobs", "2")
    return data, media, programmes


def test_channels_list_json(vigie, indexed):
    data, _, _ = indexed
    rows = json.loads(vigie(data, "channels", "list", "--json").stdout)
    assert [r["id"] for r in rows] == ["news", "sport"]
    assert rows[0]["owner"] == "Canal" and rows[0]["simulcast_group"] == "news"
    assert rows[1]["simulcast_group"] == "sport-hd"
    assert rows[0]["indexed_hours"] == pytest.approx(120 / 3600, rel=0.01)


def test_channel_errors_are_one_line(vigie, indexed):
    data, media, _ = indexed
    dup = vigie(data, "channels", "add", "news", "--name", "again", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    bad = vigie(data, "channels", "add", "bad id!", "--name", "x", check=False)
    assert bad.returncode != 0 and "channel id" in bad.stderr
    unknown = vigie(data, "reindex", "nope", str(media / "news.flac"), check=False)
    assert unknown.returncode != 0 and "no channel 'nope'" in unknown.stderr
    for r in (dup, bad, unknown):
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("factor", [1.0, 1.04])
def test_scan_detects_a_pirate_copy(vigie, indexed, tmp_path, factor):
    data, _, programmes = indexed
    piece = change_speed(programmes["news"][40 * SR : 55 * SR], factor)
    path = write_audio(tmp_path / "pirate.mp3", piece, SR, bitrate=48_000)
    out = json.loads(vigie(data, "scan", str(path), "--json", "--seconds", "10").stdout)
    assert set(out) == {
        "verdict",
        "matches",
        "sample",
        "disagreement",
        "elapsed_seconds",
        "live_coverage",
    }
    assert out["verdict"] == "match" and out["disagreement"] is False
    # A file is not dated: live references would be searched whole, and none is blind.
    assert out["sample"]["aired_utc"] is None and out["live_coverage"] == {}
    best = out["matches"][0]
    assert set(best) == {
        "channel_id",
        "confidence",
        "offset_seconds",
        "speed",
        "audio",
        "video",
        "modalities_agree",
        "reference",
        "delay_seconds",
    }
    assert best["reference"] == "asset" and best["delay_seconds"] is None
    assert best["channel_id"] == "news"
    assert best["offset_seconds"] == pytest.approx(40.0, abs=0.2)
    assert best["speed"] == pytest.approx(factor, abs=0.01)
    assert best["confidence"] >= 0.999 and best["audio"]["votes"] > 10
    assert set(best["audio"]) == {
        "votes",
        "score",
        "confidence",
        "offset_seconds",
        "peaks_found",
        "peaks_checked",
    }
    assert 0.5 * best["audio"]["peaks_checked"] < best["audio"]["peaks_found"]
    assert best["video"] is None and best["modalities_agree"] is None  # an audio-only file
    assert out["sample"] == {
        "seconds": pytest.approx(10.0, abs=0.1),
        "source": str(path),
        "audio_seconds": pytest.approx(10.0, abs=0.1),
        "video_frames": 0,
        "aired_utc": None,
        "aired_basis": None,
    }


def test_scan_of_unrelated_audio_is_no_match(vigie, indexed, tmp_path):
    data, _, _ = indexed
    path = write_audio(tmp_path / "other.wav", synth_programme(12.0, seed=999, sr=SR), SR)
    done = vigie(data, "scan", str(path), "--json")
    out = json.loads(done.stdout)
    assert done.returncode == 0 and out["verdict"] == "no_match" and out["matches"] == [], out


@pytest.mark.parametrize("kind", ["corrupt", "empty", "text", "missing"])
def test_scan_of_unreadable_input_fails_with_one_line(vigie, indexed, tmp_path, kind):
    data, _, _ = indexed
    path = tmp_path / "x.mp3"
    if kind == "corrupt":
        path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 50000, dtype=np.uint8)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("#EXTM3U\nthis is not audio\n" * 20)
    done = vigie(data, "scan", str(path), "--json", check=False)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_reindex_replaces_instead_of_duplicating(vigie, indexed):
    data, media, _ = indexed
    before = json.loads(vigie(data, "channels", "list", "--json").stdout)
    vigie(data, "reindex", "news", str(media / "news.flac"))
    after = json.loads(vigie(data, "channels", "list", "--json").stdout)
    assert before == after


def test_reindex_folder_with_jobs_and_bad_files(vigie, tmp_path):
    data, media = tmp_path / "data", tmp_path / "media"
    media.mkdir()
    for i in range(3):
        write_audio(media / f"r{i}.wav", synth_programme(20.0, seed=300 + i, sr=SR), SR)
    (media / "broken.mp3").write_bytes(b"garbage" * 100)
    (media / "notes.txt").write_text("not media")
    vigie(data, "channels", "add", "ch", "--name", "Ch")
    done = vigie(data, "reindex", "ch", str(media), "--jobs", "2")
    assert "indexed 3 of 4 recordings" in done.stdout
    assert "broken.mp3" in done.stderr.replace("\n", "")  # rich wraps long paths
    rows = json.loads(vigie(data, "channels", "list", "--json").stdout)
    assert rows[0]["indexed_hours"] == pytest.approx(60 / 3600, rel=0.01)


def test_calibrate_measures_and_stores_this_index_null(vigie, indexed, tmp_path):
    """Runs last in this module: it gives the shared index a calibration of its own."""
    data, _, _ = indexed
    negatives = tmp_path / "neg"
    negatives.mkdir()
    for i in range(3):
        write_audio(negatives / f"n{i}.wav", synth_programme(30.0, seed=500 + i, sr=SR), SR)
    done = vigie(data, "calibrate", str(negatives), "--queries", "60", "--seconds", "5")
    assert "calibrated on 60 null queries" in done.stdout
    stored = json.loads((data / "index" / "audio" / "calibration.json").read_text())
    assert stored["n_queries"] == 60 and stored["slope"] > 0
    few = vigie(data, "calibrate", str(negatives), "--queries", "10", check=False)
    assert few.returncode != 0 and "--queries" in few.stderr
    empty = vigie(data, "calibrate", str(tmp_path / "nothing"), check=False)
    assert empty.returncode != 0 and len(empty.stderr.strip().splitlines()) == 1
