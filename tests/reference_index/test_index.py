import pytest

from fingerprinting import audio
from fingerprinting.align import NullCalibration
from reference_index.index import Index, default_calibration
from service.media import change_speed, synth_programme

CAL = NullCalibration(
    threshold=10.0, tail_at_threshold=0.1, slope=0.2, n_queries=100, max_null_score=15.0
)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    idx = Index(tmp_path_factory.mktemp("idx"), calibrations={"audio": CAL})
    for i, ch in enumerate(["a", "b", "c"]):
        y = synth_programme(60.0, seed=40 + i, sr=8000)
        idx.add_recording(ch, f"{ch}.wav", audio.fingerprint(y))
    return idx


def test_query_names_channel_offset_and_speed(index):
    y = synth_programme(60.0, seed=41, sr=8000)  # channel "b"
    q = change_speed(y[8000 * 12 : 8000 * 25], 1.03)[: 8000 * 10]
    best = index.query_audio(audio.query_peaks(q))[0]
    assert best.channel_id == "b"
    assert best.offset_seconds == pytest.approx(12.0, abs=0.1)
    assert best.speed == pytest.approx(1.03, abs=0.006)
    assert best.confidence > 0.999 and best.p_value < 1e-3
    assert best.track.source == "b.wav"


def test_channel_filter(index):
    y = synth_programme(60.0, seed=41, sr=8000)
    res = index.query_audio(audio.query_peaks(y[8000 * 5 : 8000 * 15]), channels={"a", "c"})
    assert all(c.channel_id != "b" for c in res)


def test_live_tracks_report_utc(index, tmp_path):
    idx = Index(tmp_path, calibrations={"audio": CAL})
    y = synth_programme(40.0, seed=77, sr=8000)
    idx.add_recording("live1", "feed", audio.fingerprint(y), kind="live", start=1_800_000_000.0)
    best = idx.query_audio(audio.query_peaks(y[8000 * 20 : 8000 * 30]))[0]
    assert best.offset_seconds == pytest.approx(1_800_000_020.0, abs=0.1)


def test_stats(index):
    st = index.stats()
    assert st["tracks"] == 3 and st["hours"] == pytest.approx(180 / 3600, rel=0.01)
    assert st["bytes"] > 8 * st["postings"]


def test_shipped_calibration_is_measured():
    cal = default_calibration()
    assert cal.n_queries >= 200 and 0 < cal.slope < 5
