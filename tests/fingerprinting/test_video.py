"""Frame normalisation (bars, flat frames, logo corners), probes and video alignment."""

import cv2
import numpy as np
import pytest

from fingerprinting.align import NullCalibration
from fingerprinting.decode import FrameBatch, decode_frames
from fingerprinting.framehash import hamming
from fingerprinting.params import VideoParams
from fingerprinting.video import (
    WHOLE,
    bar_boxes,
    canonical,
    fingerprint_frames,
    informative,
    pip_windows,
    query_probes,
    video_query,
)
from reference_index.index import Index
from service.media import synth_pictures

P = VideoParams()
CAL = NullCalibration(
    threshold=0.0, tail_at_threshold=1.0, slope=1.0, n_queries=0, max_null_score=0.0
)


def gray(rgb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])


def scaled(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="module")
def programme():
    """60 s of synthetic pictures at 10 fps, grey, 192 x 108 (the decoder's output size)."""
    return gray(scaled(synth_pictures(60.0, 10.0, seed=3, width=320, height=180), 192, 108))


def boxed(pics: np.ndarray, top: int, bottom: int, left: int, right: int, seed: int = 0):
    """Pictures inside a noisy black canvas (as low-bitrate letterboxing looks)."""
    n, h, w = pics.shape
    rng = np.random.default_rng(seed)
    canvas = np.clip(16 + rng.normal(0, 3, (n, h + top + bottom, w + left + right)), 0, 255)
    canvas = canvas.astype(np.uint8)
    canvas[:, top : top + h, left : left + w] = pics
    return canvas


@pytest.mark.parametrize(
    "bars", [(14, 14, 0, 0), (0, 0, 24, 24), (10, 10, 16, 16), (0, 0, 0, 0), (13, 12, 0, 0)]
)
def test_bars_are_found_on_noisy_synthetic_frames(programme, bars):
    pics = scaled(programme[:30], 192 - bars[2] - bars[3], 108 - bars[0] - bars[1])
    frames = boxed(pics, *bars)
    box = bar_boxes(frames, P, window=None)
    top, bottom, left, right = bars
    expect = [top, 108 - bottom, left, 192 - right]
    assert np.all(np.abs(box - expect) <= 1), (box[0], expect)


def test_a_logo_over_the_bars_leaves_them_bars(programme):
    frames = boxed(scaled(programme[:20], 144, 108), 0, 0, 24, 24)  # 4:3 in 16:9
    frames[:, 6:20, 4:40] = 250  # a pirate logo straddling the left bar
    box = bar_boxes(frames, P, window=None)
    assert np.all(np.abs(box - [0, 108, 24, 168]) <= 1), box[0]


def test_a_dark_band_on_one_side_is_picture_not_a_bar(programme):
    frames = boxed(scaled(programme[:20], 192, 90), 18, 0, 0, 0)  # dark band on top only
    assert np.all(bar_boxes(frames, P, window=None)[:, 0] == 0)


def test_a_dark_shot_does_not_widen_the_bars(programme):
    frames = programme[:40].copy()
    frames[10:15, :30] = 18  # a dark sky over the top of a few frames
    box = bar_boxes(frames, P, window=25)
    assert box[:, 0].max() == 0


def test_bars_on_real_frames(shared_media):
    pics = decode_frames(str(shared_media / "video" / "big_buck_bunny_0_30.webm"), 1.0).gray
    frames = boxed(scaled(pics, 192, 80), 14, 14, 0, 0)
    box = bar_boxes(frames, P, window=None)
    assert np.all(np.abs(box - [14, 94, 0, 192]) <= 2), box[0]


def test_uninformative_frames_never_vote(programme):
    black = np.full((3, 108, 192), 16, np.uint8)
    grey = np.full((3, 108, 192), 128, np.uint8) + np.random.default_rng(0).integers(
        0, 3, (3, 108, 192), dtype=np.uint8
    )
    stripes = np.repeat(np.repeat(np.linspace(30, 230, 7).astype(np.uint8), 28)[None, :192], 108, 0)
    bars = np.broadcast_to(stripes, (3, 108, 192)).copy()
    frames = np.concatenate([black, grey, bars, programme[:3]])
    pics = canonical(frames, bar_boxes(frames, P, window=1), [WHOLE], P)[:, 0]
    assert informative(pics, P).tolist() == [False] * 9 + [True] * 3
    times = np.arange(12) / 5.0
    fp = fingerprint_frames([FrameBatch(times, frames)], P)
    assert fp.frames.tolist() == [9, 10, 11]


def test_logos_and_tickers_do_not_change_the_hash(programme):
    frames = programme[:20].copy()
    marked = frames.copy()
    marked[:, 4:18, 4:36] = 255  # an opaque pirate logo, top left
    marked[:, 90:104, 150:188] = 0  # a black box over the channel's logo, bottom right
    marked[:, 96:, :] = 30  # a ticker band along the bottom
    marked[:, 98:104, 20:120] = 220  # its text
    a = fingerprint_frames([FrameBatch(np.arange(20) / 5.0, frames)], P)
    b = fingerprint_frames([FrameBatch(np.arange(20) / 5.0, marked)], P)
    assert np.median(hamming(a.hashes, b.hashes)) <= 2


def test_mirror_probe_undoes_a_mirrored_restream(programme):
    frames = programme[:20]
    ref = fingerprint_frames([FrameBatch(np.arange(20) / 5.0, frames)], P)
    q = video_query(FrameBatch(np.arange(20) / 5.0, frames[:, :, ::-1].copy()), P)
    mirror = q.probe_names.index("mirror")
    assert np.array_equal(np.sort(q.hashes[q.probe == mirror]), np.sort(ref.hashes))


def test_probes_include_uncrop_and_pip_windows():
    names = [p.name for p in query_probes(P)]
    assert names[:2] == ["whole", "mirror"] and {"uncrop10", "widen25"} <= set(names)
    assert not any(n.startswith("pip") for n in names)  # PiP windows come from the sample


@pytest.fixture(scope="module")
def index(tmp_path_factory, programme):
    idx = Index(tmp_path_factory.mktemp("vidx"), calibrations={"audio": CAL, "video": CAL})
    for seed, ch in ((3, "news"), (4, "sport")):
        pics = (
            programme
            if seed == 3
            else gray(
                scaled(synth_pictures(60.0, 10.0, seed=seed, width=320, height=180), 192, 108)
            )
        )
        times = np.arange(len(pics)) / 10.0
        idx.add_recording(ch, f"{ch}.mp4", fingerprint_frames([FrameBatch(times, pics)], P))
    return idx


def sample(programme, start: float, seconds: float, speed: float = 1.0) -> FrameBatch:
    """Frames a restream shows at 2 fps: sample time t shows reference time start + speed t."""
    t = np.arange(0.0, seconds, 1 / P.query_fps)
    ref_frame = np.round((start + speed * t) * 10.0).astype(int)
    return FrameBatch(t, programme[ref_frame])


@pytest.mark.parametrize("speed", [1.0, 1.04, 0.96])
def test_alignment_finds_offset_and_slope(index, programme, speed):
    cands = index.query_video(video_query(sample(programme, 21.3, 10.0, speed), P))
    best = cands[0]
    assert best.channel_id == "news"
    assert abs(best.offset_seconds - 21.3) <= 0.5
    assert abs(best.speed - speed) <= 0.021  # one 0.2 s frame over 10 s
    assert best.votes >= 15


def test_letterboxed_mirrored_and_cropped_restreams_match(index, programme):
    s = sample(programme, 33.0, 10.0)
    views = {
        "letterbox": boxed(scaled(s.gray, 192, 80), 14, 14, 0, 0),
        "mirror": s.gray[:, :, ::-1].copy(),
        "crop10": scaled(s.gray[:, 5:103, 10:182], 192, 108),
    }
    for name, g in views.items():
        best = index.query_video(video_query(FrameBatch(s.times, g), P))[0]
        assert best.channel_id == "news", name
        assert abs(best.offset_seconds - 33.0) <= 0.5, name


def test_shuffled_frames_are_not_a_match(index, programme):
    """A bag of the right pictures in the wrong order is not evidence."""
    s = sample(programme, 10.0, 10.0)
    order = np.random.default_rng(1).permutation(len(s))
    shuffled = FrameBatch(s.times, s.gray[order])
    right = index.query_video(video_query(s, P))[0]
    wrong = index.query_video(video_query(shuffled, P))
    assert right.votes >= 15
    assert not wrong or wrong[0].votes <= 5


@pytest.mark.parametrize("x, y", [(0.04, 0.04), (0.36, 0.36), (0.2, 0.2), (0.04, 0.36)])
def test_pip_window_is_found_from_its_border(programme, x, y):
    background = gray(scaled(synth_pictures(10.0, 2.0, seed=8, width=320, height=180), 192, 108))
    inset = scaled(programme[::5][:20], 116, 64)  # 60 % of 192 x 108
    frames = background.copy()
    x0, y0 = round(x * 192), round(y * 108)
    frames[:, y0 : y0 + 64, x0 : x0 + 116] = inset
    windows = pip_windows(frames, P)
    assert windows, "no window found"
    wx0, wy0, wx1, wy1 = windows[0].window
    assert np.allclose(
        [wx0 * 192, wy0 * 108, wx1 * 192, wy1 * 108], [x0, y0, x0 + 116, y0 + 64], atol=2
    )
    assert not pip_windows(background, P)


def test_pip_restream_matches_through_its_window(index, programme):
    s = sample(programme, 12.0, 10.0)
    background = gray(scaled(synth_pictures(10.0, 2.0, seed=9, width=320, height=180), 192, 108))
    frames = background.copy()
    frames[:, 38:102, 68:184] = scaled(s.gray, 116, 64)
    best = index.query_video(video_query(FrameBatch(s.times, frames), P))[0]
    assert best.channel_id == "news" and abs(best.offset_seconds - 12.0) <= 0.5
