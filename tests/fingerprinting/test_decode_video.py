"""Frame sampling: rate, size, timing, keyframe-only decoding, one pass for sound and picture."""

from fractions import Fraction

import av
import numpy as np
import pytest

from fingerprinting.decode import DecodeError, FrameBatch, decode_frames, iter_media
from fingerprinting.sinks import FrameSink
from service.media import synth_pictures, synth_programme, write_audio, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s of 25 fps pictures (320 x 180) with sound, H.264 + AAC in MP4."""
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    pictures = synth_pictures(12.0, 25.0, seed=5)
    return write_video(path, pictures, 25.0, synth_programme(12.0, seed=5, sr=22050), 22050)


def test_frames_come_at_the_asked_rate_with_their_times(clip):
    frames = decode_frames(str(clip), 5.0)
    assert len(frames) == 60
    assert np.allclose(np.diff(frames.times), 0.2, atol=0.021)
    assert frames.times[0] == pytest.approx(0.0, abs=0.05)
    assert frames.gray.dtype == np.uint8 and frames.gray.shape[1:] == (108, 192)


def test_max_seconds_and_never_upscaled(clip):
    frames = decode_frames(str(clip), 2.0, max_seconds=5.0, width=640)
    assert len(frames) == 10 and frames.gray.shape[1:] == (180, 320)


def test_one_pass_gives_sound_and_pictures(clip):
    items = list(iter_media(str(clip), sample_rate=8000, fps=2.0, max_seconds=6.0))
    pcm = np.concatenate([i for i in items if not isinstance(i, FrameBatch)])
    frames = FrameBatch.concat([i for i in items if isinstance(i, FrameBatch)])
    assert pcm.size == 6 * 8000 and len(frames) == 12


def test_audio_only_file_has_no_pictures(tmp_path):
    path = write_audio(tmp_path / "a.wav", synth_programme(3.0, seed=1, sr=8000), 8000)
    with pytest.raises(DecodeError, match="no video stream"):
        decode_frames(str(path), 2.0)
    items = list(iter_media(str(path), sample_rate=8000, fps=2.0))
    assert items and not any(isinstance(i, FrameBatch) for i in items)


def test_keyframe_only_decoding_keeps_the_rate(tmp_path):
    """Keyframes every 0.2 s: a 2 fps sample decodes only them, and gets the same frames."""
    pictures = synth_pictures(10.0, 25.0, seed=6)
    path = tmp_path / "short-gop.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 180, "yuv420p"
        s.codec_context.gop_size = 5
        s.options = {"keyint_min": "5", "sc_threshold": "0", "preset": "veryfast"}
        for k, img in enumerate(pictures):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = k, Fraction(1, 25)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    full = decode_frames(str(path), 2.0, keyframes=False)
    auto = decode_frames(str(path), 2.0)
    assert len(auto) == len(full) == 20
    assert np.allclose(auto.times, full.times, atol=0.21)


def _packet(t: float, key: bool) -> av.Packet:
    pk = av.Packet(b"\x00" * 8)
    pk.pts, pk.time_base, pk.is_keyframe = round(t * 1000), Fraction(1, 1000), key
    return pk


def test_a_late_keyframe_brings_back_the_held_packets():
    sink = FrameSink(None, fps=2.0, width=192, t0=0.0, max_seconds=None, keyframes=None)
    sent = [pk for i in range(4) for pk in sink.to_decode(_packet(0.4 * i, True))]
    assert sink.keyframe_mode and len(sent) == 4  # keyframes every 0.4 s: only they decode
    assert sink.to_decode(_packet(1.3, False)) == []  # held back
    late = [_packet(1.3 + 0.04 * k, False) for k in range(1, 20)]  # and no keyframe comes
    out = [q for pk in late for q in sink.to_decode(pk)]
    assert not sink.keyframe_mode
    assert [p.pts for p in out] == [1300] + [p.pts for p in late]  # all decoded, in order
