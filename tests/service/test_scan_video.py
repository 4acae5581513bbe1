"""`vigie scan` of audio+video, video-only and audio-only restreams of an A/V channel."""

import json

import numpy as np
import pytest

from service.media import synth_pictures, synth_programme, write_audio, write_video

SR = 22050
FPS = 10.0


@pytest.fixture(scope="module")
def tv(vigie, tmp_path_factory):
    """Two A/V channels (60 s of pictures and sound each), indexed."""
    root = tmp_path_factory.mktemp("tv")
    data, media = root / "data", root / "media"
    media.mkdir()
    channels = {}
    for i, ch in enumerate(["tv1", "tv2"]):
        pictures = synth_pictures(60.0, FPS, seed=40 + i)
        sound = synth_programme(60.0, seed=140 + i, sr=SR)
        channels[ch] = (pictures, sound)
        write_video(media / f"{ch}.mp4", pictures, FPS, sound, SR)
        vigie(data, "channels", "add", ch, "--name", ch.upper())
    vigie(data, "reindex", "tv1", str(media / "tv1.mp4"))
    vigie(data, "reindex", "tv2", str(media / "tv2.mp4"), "--jobs", "2")
    return data, channels


def scan(vigie, data, path):
    return json.loads(vigie(data, "scan", str(path), "--json", "--seconds", "10").stdout)


def test_reindex_stores_both_modalities(vigie, tv):
    data, _ = tv
    rows = json.loads(vigie(data, "channels", "list", "--json").stdout)
    assert {r["id"]: r["indexed_hours"] for r in rows} == {
        "tv1": pytest.approx(60 / 3600, rel=0.02),
        "tv2": pytest.approx(60 / 3600, rel=0.02),
    }


def test_av_restream_fuses_agreeing_modalities(vigie, tv, tmp_path):
    data, channels = tv
    pictures, sound = channels["tv2"]
    path = write_video(
        tmp_path / "av.ts", pictures[200:320], FPS, sound[20 * SR : 32 * SR], SR, 400_000
    )
    out = scan(vigie, data, path)
    best = out["matches"][0]
    assert out["verdict"] == "match" and best["channel_id"] == "tv2"
    assert best["audio"] and best["video"] and best["modalities_agree"] is True
    assert best["offset_seconds"] == pytest.approx(20.0, abs=0.5)
    assert best["video"]["offset_seconds"] == pytest.approx(20.0, abs=0.5)
    # Fisher's combination: stronger than either modality alone.
    assert (
        1 - best["confidence"]
        <= min(1 - best["audio"]["confidence"], 1 - best["video"]["confidence"]) + 1e-12
    )
    assert out["sample"]["video_frames"] == 20 and out["sample"]["audio_seconds"] > 9.9


def test_muted_restream_is_found_by_its_pictures(vigie, tv, tmp_path):
    data, channels = tv
    pictures, _ = channels["tv2"]
    mirrored = pictures[300:420, :, ::-1].copy()  # mirrored, no sound at all
    out = scan(vigie, data, write_video(tmp_path / "muted.mp4", mirrored, FPS))
    best = out["matches"][0]
    assert out["verdict"] == "match" and best["channel_id"] == "tv2"
    assert best["audio"] is None and best["modalities_agree"] is None
    assert best["video"]["frames_matched"] >= 15
    assert best["offset_seconds"] == pytest.approx(30.0, abs=0.5)
    assert out["sample"]["audio_seconds"] == 0


def test_radio_restream_is_found_by_its_sound(vigie, tv, tmp_path):
    data, channels = tv
    _, sound = channels["tv1"]
    out = scan(
        vigie, data, write_audio(tmp_path / "radio.mp3", sound[5 * SR : 17 * SR], SR, 64_000)
    )
    best = out["matches"][0]
    assert best["channel_id"] == "tv1" and best["video"] is None
    assert best["offset_seconds"] == pytest.approx(5.0, abs=0.2)
    assert out["sample"]["video_frames"] == 0


def test_dubbed_restream_reports_the_disagreement(vigie, tv, tmp_path):
    """Pictures of tv1 with the sound of tv2: both are found, and it is said."""
    data, channels = tv
    pictures, _ = channels["tv1"]
    _, sound = channels["tv2"]
    path = write_video(tmp_path / "dub.mp4", pictures[100:220], FPS, sound[40 * SR : 52 * SR], SR)
    out = scan(vigie, data, path)
    found = {m["channel_id"]: m for m in out["matches"]}
    assert set(found) == {"tv1", "tv2"} and out["disagreement"] is True
    assert found["tv1"]["video"] and found["tv1"]["audio"] is None
    assert found["tv2"]["audio"] and found["tv2"]["video"] is None


def test_unrelated_pictures_are_no_match(vigie, tv, tmp_path):
    data, _ = tv
    other = synth_pictures(12.0, FPS, seed=999)
    out = scan(vigie, data, write_video(tmp_path / "other.mp4", other, FPS))
    assert out["verdict"] == "no_match" and out["matches"] == []
    noise = np.random.default_rng(0).integers(0, 256, (120, 180, 320, 3), dtype=np.uint8)
    out = scan(vigie, data, write_video(tmp_path / "noise.mp4", noise, FPS))
    assert out["verdict"] == "no_match"


def test_calibrate_video_measures_this_index_null(vigie, tv, tmp_path):
    """Runs last in this module: it gives the shared index a video calibration of its own."""
    data, _ = tv
    negatives = tmp_path / "neg"
    negatives.mkdir()
    for i in range(2):
        write_video(negatives / f"n{i}.mp4", synth_pictures(20.0, FPS, seed=600 + i), FPS)
    done = vigie(
        data,
        "calibrate",
        str(negatives),
        "--modality",
        "video",
        "--queries",
        "50",
        "--seconds",
        "5",
    )
    assert "calibrated on 50 null queries" in done.stdout
    stored = json.loads((data / "index" / "video" / "calibration.json").read_text())
    assert stored["n_queries"] == 50
    bad = vigie(data, "calibrate", str(negatives), "--modality", "smell", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --modality")
    assert len(bad.stderr.strip().splitlines()) == 1
