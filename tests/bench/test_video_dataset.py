"""Tests for the pirate-variant video transforms and clip I/O in ``bench/video_dataset.py``."""

import av
import numpy as np
import pytest

from bench import video_dataset as vd

W, H, FPS = 160, 90, 10.0

EXPECTED_SIZE = {  # (width, height) of each variant for a 160x90 input
    "reencode_360p": (640, 360),
    "combo": (640, 360),
    "letterbox": (160, 120),
}


@pytest.fixture(scope="module")
def clip():
    return vd.synthetic_clip(2.0, FPS, W, H, seed=1)


@pytest.fixture(scope="module")
def other():
    """Unrelated, shorter, smaller and at another frame rate (exercises looping and scaling)."""
    return vd.synthetic_clip(1.0, 12.0, 96, 54, seed=2)


def noise_clip(n=6, w=W, h=H, seed=0, fps=FPS):
    rng = np.random.default_rng(seed)
    return vd.Clip(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), fps, 7.5)


def mad(a, b):
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# --------------------------------------------------------------------------- #
# Clip and synthetic source
# --------------------------------------------------------------------------- #


def test_clip_is_read_only_and_validated():
    arr = np.zeros((2, 4, 6, 3), np.uint8)
    c = vd.Clip(arr, 25, 1)
    assert (c.n_frames, c.height, c.width, c.duration) == (2, 4, 6, 0.08)
    assert isinstance(c.fps, float) and c.start_seconds == 1.0
    with pytest.raises(ValueError):
        c.frames[0, 0, 0, 0] = 1
    arr[0, 0, 0, 0] = 1  # the caller's array stays writeable
    for bad in (np.zeros((2, 4, 6), np.uint8), np.zeros((2, 4, 6, 3)), np.zeros((0, 4, 6, 3))):
        with pytest.raises(ValueError):
            vd.Clip(bad, 25)
    with pytest.raises(ValueError):
        vd.Clip(arr, 0)


def test_synthetic_clip(clip):
    assert clip.frames.shape == (20, H, W, 3) and clip.fps == FPS and clip.start_seconds == 0
    again = vd.synthetic_clip(2.0, FPS, W, H, seed=1)
    assert np.array_equal(clip.frames, again.frames)
    unrelated = vd.synthetic_clip(2.0, FPS, W, H, seed=2)
    assert mad(clip.frames, unrelated.frames) > 20
    steps = [mad(a, b) for a, b in zip(clip.frames[:-1], clip.frames[1:], strict=True)]
    assert min(steps) > 0  # always moving
    long = vd.synthetic_clip(8.0, FPS, W, H, seed=3)
    jumps = [mad(a, b) for a, b in zip(long.frames[:-1], long.frames[1:], strict=True)]
    assert max(jumps) > 5 * np.median(jumps)  # at least one scene cut


# --------------------------------------------------------------------------- #
# Registry contract
# --------------------------------------------------------------------------- #


def test_registry_names_and_bitrates():
    names = "clean reencode_360p fps30 letterbox pillarbox crop5 crop10 logo scrolling_text"
    assert set(vd.VIDEO_TRANSFORMS) == {*names.split(), "mirror", "pip", "color", "combo"}
    rates = {name: t.bitrate for name, t in vd.VIDEO_TRANSFORMS.items()}
    assert rates.pop("reencode_360p") == rates.pop("combo") == 300_000
    assert set(rates.values()) == {vd.DEFAULT_BITRATE} == {1_000_000}


@pytest.mark.parametrize("name", sorted(vd.VIDEO_TRANSFORMS))
def test_transform_contract(name, clip, other):
    before = clip.frames.copy()
    transform = vd.VIDEO_TRANSFORMS[name]
    out = transform(clip, np.random.default_rng(5), other)
    assert isinstance(out, vd.Clip) and out.frames.dtype == np.uint8
    assert (out.width, out.height) == EXPECTED_SIZE.get(name, (W, H))
    assert out.width % 2 == 0 and out.height % 2 == 0
    assert out.start_seconds == clip.start_seconds
    assert out.fps == (30.0 if name == "fps30" else clip.fps)
    assert abs(out.duration - clip.duration) <= 0.5 / out.fps
    assert np.array_equal(clip.frames, before)  # input untouched
    again = transform(clip, np.random.default_rng(5), other)
    assert np.array_equal(out.frames, again.frames)  # deterministic for a seed
    if name != "clean":
        assert not np.array_equal(out.frames, clip.frames[:, : out.height, : out.width])


@pytest.mark.parametrize("name", ["letterbox", "logo", "scrolling_text", "pip", "color"])
def test_random_transforms_depend_on_the_seed(name, clip, other):
    t = vd.VIDEO_TRANSFORMS[name]
    outs = [t(clip, np.random.default_rng(s), other).frames for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


# --------------------------------------------------------------------------- #
# Properties of each transformation
# --------------------------------------------------------------------------- #


def test_clean_is_unchanged(clip):
    assert np.array_equal(vd.VIDEO_TRANSFORMS["clean"](clip, None, None).frames, clip.frames)


def test_scale_to_height_keeps_aspect(clip):
    assert (vd.scale_to_height(clip, 360).width, vd.scale_to_height(clip, 360).height) == (640, 360)
    four_three = noise_clip(2, 120, 90)
    assert vd.VIDEO_TRANSFORMS["reencode_360p"](four_three, None, None).frames.shape[1:3] == (
        360,
        480,
    )
    small = vd.scale_to_height(vd.synthetic_clip(1.0, FPS, 640, 360, seed=4), 90)
    assert small.frames.shape[1:3] == (90, 160)


@pytest.mark.parametrize(("fps", "n"), [(10.0, 20), (25.0, 25), (30000 / 1001, 60), (60.0, 60)])
def test_fps30_nearest_frame(fps, n):
    src = vd.Clip(np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(3, 3), fps, 2.0)
    out = vd.VIDEO_TRANSFORMS["fps30"](src, None, None)
    assert out.fps == 30.0 and out.n_frames == round(n * 30 / fps)
    assert abs(out.duration - src.duration) <= 0.5 / 30
    got = out.frames[:, 0, 0, 0].astype(int)
    t_out = np.arange(out.n_frames) / 30
    inside = t_out <= (n - 1) / fps  # past the last frame, the last frame is held
    assert np.all(np.abs(got / fps - t_out)[inside] <= 0.5 / fps + 1e-9)  # nearest frame
    assert np.all(got[~inside] == n - 1)
    assert np.all(np.diff(got) >= 0) and got[0] == 0


def test_letterbox_bars_are_noisy_black(clip):
    out = vd.letterbox(clip, np.random.default_rng(0))
    bars = np.concatenate([out.frames[:, :15], out.frames[:, -15:]], axis=1)
    assert bars.max() <= 6 and 1.0 < bars.mean() < 4.5  # near black, not pure 0
    assert np.array_equal(out.frames[:, 15:-15], clip.frames)
    assert not np.array_equal(out.frames[0, :15], out.frames[1, :15])  # noise changes


def test_pillarbox_centre_cut_with_side_bars(clip):
    out = vd.pillarbox(clip, np.random.default_rng(0))
    assert (out.width, out.height) == (W, H)
    pw = 120  # 4:3 of 90 lines, unstretched
    bars = np.concatenate([out.frames[:, :, :20], out.frames[:, :, -20:]], axis=2)
    assert bars.max() <= 6
    assert np.array_equal(out.frames[:, :, 20 : 20 + pw], clip.frames[:, :, 20 : 20 + pw])


def _centroid(frame):
    weight = frame[..., 0].astype(float)
    ys, xs = np.indices(weight.shape)
    return (xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()


@pytest.mark.parametrize(("name", "fraction"), [("crop5", 0.05), ("crop10", 0.10)])
def test_crop_scales_about_the_centre(name, fraction):
    w, h = 400, 200
    frames = np.zeros((2, h, w, 3), np.uint8)
    frames[:, 150:160, 300:310] = 255  # a square 105 px right and 55 px below the centre
    src = vd.Clip(frames, FPS)
    out = vd.VIDEO_TRANSFORMS[name](src, None, None)
    (x0, y0), (x1, y1) = _centroid(frames[0]), _centroid(out.frames[0])
    cx, cy = (w - 1) / 2, (h - 1) / 2
    scale = 1 / (1 - fraction)
    assert (x1 - cx) / (x0 - cx) == pytest.approx(scale, rel=0.01)
    assert (y1 - cy) / (y0 - cy) == pytest.approx(scale, rel=0.01)


def test_logo_blurs_one_corner_and_stamps_another():
    src = noise_clip(4, 200, 100)
    corners = {
        "top_left": (slice(0, 25), slice(0, 50)),
        "top_right": (slice(0, 25), slice(150, 200)),
        "bottom_left": (slice(75, 100), slice(0, 50)),
        "bottom_right": (slice(75, 100), slice(150, 200)),
    }
    for seed in range(6):
        out = vd.overlay_logos(src, np.random.default_rng(seed)).frames
        changed = np.any(out != src.frames, axis=(0, 3))
        assert not changed[25:75].any() and not changed[:, 50:150].any()  # corners only
        hit = [p for p, sl in corners.items() if changed[sl].any()]
        assert len(hit) == 2
        static = {p: np.all(out[:, *corners[p]] == out[:1, *corners[p]], axis=(0, 3)) for p in hit}
        logo_at = max(hit, key=lambda p: (static[p] & changed[corners[p]]).sum())
        (blur_at,) = set(hit) - {logo_at}
        assert blur_at.startswith("top")  # where channel logos live
        assert (static[logo_at] & changed[corners[logo_at]]).sum() > 100  # opaque, static
        ys, xs = np.nonzero(changed[corners[blur_at]])
        assert np.ptp(ys) + 1 == 12 and np.ptp(xs) + 1 == 30  # 12 % x 15 % of the frame
        box = out[:, *corners[blur_at]][:, ys.min() + 3 : ys.max() - 2, xs.min() + 3 : xs.max() - 2]
        assert box.astype(float).std() < 0.3 * src.frames.astype(float).std()  # smoothed


def test_scrolling_text_ticker():
    src = noise_clip(12, W, 100, fps=10.0)
    out = vd.scrolling_text(src, np.random.default_rng(0), speed=0.25).frames  # 4 px/frame
    bh = 10
    assert np.array_equal(out[:, :-bh], src.frames[:, :-bh])
    band = out[:, -bh:].astype(int)
    assert (band[0] == band[0, 0, 0]).all()  # frame 0: the text has not entered yet (plain band)
    assert band[-1].std() > 10  # text visible later
    assert np.array_equal(band[1:, :, :-4], band[:-1, :, 4:])  # moves left, constant speed


def test_mirror_is_a_flip(clip):
    out = vd.VIDEO_TRANSFORMS["mirror"](clip, None, None)
    assert np.array_equal(out.frames, clip.frames[:, :, ::-1])


@pytest.mark.parametrize("position", vd.POSITIONS)
def test_pip_region_holds_the_scaled_channel(clip, other, position):
    out = vd.picture_in_picture(clip, other, position).frames
    pw, ph = 96, 54
    x, y = vd._box(position, W, H, pw, ph, 0.04)
    assert np.array_equal(out[:, y : y + ph, x : x + pw], vd._resize(clip.frames, pw, ph))
    idx = np.floor(np.arange(clip.n_frames) * 12.0 / FPS + 1e-9).astype(int) % other.n_frames
    background = vd._resize(other.frames[idx], W, H)
    outside = np.ones((H, W), bool)
    outside[y : y + ph, x : x + pw] = False
    assert np.array_equal(out[:, outside], background[:, outside])  # looped, full frame


def test_pip_registry_picks_a_position(clip, other):
    small = vd._resize(clip.frames, 96, 54)
    seen = set()
    for seed in range(12):
        out = vd.VIDEO_TRANSFORMS["pip"](clip, np.random.default_rng(seed), other).frames
        boxes = [vd._box(p, W, H, 96, 54, 0.04) for p in vd.POSITIONS]
        match = [
            i
            for i, (x, y) in enumerate(boxes)
            if np.array_equal(out[:, y : y + 54, x : x + 96], small)
        ]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) >= 3
    with pytest.raises(ValueError, match="other"):
        vd.VIDEO_TRANSFORMS["pip"](clip, np.random.default_rng(0), None)


def test_color_shift(clip, monkeypatch):
    assert np.array_equal(vd.color_shift(clip, 1.0, 1.0, 1.0).frames, clip.frames)
    grey = vd.color_shift(clip, 1.0, 1.0, 0.0).frames.astype(int)
    assert np.abs(grey - grey[..., :1]).max() <= 1
    assert vd.color_shift(clip, 1.4, 1.0, 1.0).frames.mean() < clip.frames.mean() - 5
    flat = vd.color_shift(clip, 1.0, 0.7, 1.0).frames.astype(float)
    assert flat.std() < 0.75 * clip.frames.astype(float).std()
    drawn = []
    real = vd.color_shift

    def spy(c, *params):
        drawn.append(params)
        return real(c, *params)

    monkeypatch.setattr(vd, "color_shift", spy)
    for seed in range(20):
        vd.VIDEO_TRANSFORMS["color"](clip, np.random.default_rng(seed), None)
    g, k, s = np.array(drawn).T
    assert g.min() >= 0.7 and g.max() <= 1.4 and k.min() >= 0.7 and k.max() <= 1.3
    assert s.min() >= 0.5 and s.max() <= 1.5 and np.ptp(s) > 0.5


def test_combo_is_crop_logo_360p(clip):
    out = vd.VIDEO_TRANSFORMS["combo"](clip, np.random.default_rng(3), None)
    rng = np.random.default_rng(3)
    manual = vd.scale_to_height(vd.overlay_logos(vd.crop_scale(clip, 0.05), rng), 360)
    assert np.array_equal(out.frames, manual.frames)


# --------------------------------------------------------------------------- #
# write_clip / read_clip
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("fps", [25.0, 29.97, 30000 / 1001])
@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_write_read_round_trip(tmp_path, suffix, fps):
    src = vd.synthetic_clip(2.0, fps, W, H, seed=7)
    path = vd.write_clip(tmp_path / f"q{suffix}", src, bitrate=1_000_000)
    n = src.n_frames
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and not container.streams.audio
        stream = container.streams.video[0]
        times = [float(f.time) for f in container.decode(stream)]
        duration = container.duration / av.time_base
    assert abs(len(times) - n) <= 1
    assert abs(times[0]) < 1e-3  # first pts 0
    assert times[-1] == pytest.approx((n - 1) / fps, abs=0.5 / fps)
    assert duration == pytest.approx(n / fps, abs=1 / fps)
    back = vd.read_clip(path)
    assert abs(back.n_frames - n) <= 1 and back.start_seconds == pytest.approx(0, abs=1e-3)
    assert back.fps == pytest.approx(fps, rel=1e-4)
    assert back.frames.shape[1:] == (H, W, 3)
    m = min(n, back.n_frames)
    assert mad(back.frames[:m], src.frames[:m]) < 8  # RGB order and colours survive


@pytest.mark.parametrize(("suffix", "gop"), [(".mp4", None), (".ts", 25), (".ts", None)])
def test_read_clip_window(tmp_path, suffix, gop):
    src = vd.synthetic_clip(6.0, 25.0, W, H, seed=8)
    path = vd.write_clip(tmp_path / f"ref{suffix}", src, gop=gop)
    got = vd.read_clip(path, 3.0, 1.0)
    assert got.n_frames == 25 and got.fps == 25.0
    assert got.start_seconds == pytest.approx(3.0, abs=0.5 / 25)
    errors = [mad(got.frames[0], src.frames[i]) for i in range(72, 79)]
    assert int(np.argmin(errors)) == 3  # frame 75 = 3.0 s
    tail = vd.read_clip(path, 5.5, 2.0)  # runs past the end of the file
    assert 12 <= tail.n_frames <= 13
    with pytest.raises(ValueError):
        vd.read_clip(path, 7.0, 1.0)


def test_read_clip_max_width_and_writer_checks(tmp_path):
    src = vd.synthetic_clip(0.5, 25.0, 320, 180, seed=9)
    path = vd.write_clip(tmp_path / "sub" / "big.mp4", src, gop=12)
    assert vd.read_clip(path, max_width=160).frames.shape[1:3] == (90, 160)
    assert vd.read_clip(path, max_width=1000).frames.shape[1:3] == (180, 320)  # never upscaled
    assert vd.read_clip(path, max_width=101).frames.shape[1:3] == (56, 100)  # even sizes
    assert vd.read_clip(path, max_width=103).width <= 103
    with pytest.raises(ValueError, match="suffix"):
        vd.write_clip(tmp_path / "q.avi", src)
    with pytest.raises(ValueError, match="even"):
        vd.write_clip(tmp_path / "odd.mp4", vd.Clip(np.zeros((2, 9, 16, 3), np.uint8), 25))


def test_bitrate_is_applied(tmp_path):
    src = noise_clip(20, W, H, fps=10.0)
    low = vd.write_clip(tmp_path / "low.ts", src, bitrate=100_000).stat().st_size
    high = vd.write_clip(tmp_path / "high.ts", src, bitrate=1_000_000).stat().st_size
    assert low < 0.4 * high
    assert low * 8 / src.duration < 2 * 100_000  # roughly on target (TS overhead included)


@pytest.mark.media
def test_read_real_media(shared_media):
    path = shared_media / "video" / "big_buck_bunny_0_30.webm"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    got = vd.read_clip(path, 12.3, 2.0)
    assert got.fps == 24.0 and got.n_frames == 48 and got.frames.shape[1:] == (360, 640, 3)
    assert got.start_seconds == pytest.approx(12.3, abs=0.5 / 24)
