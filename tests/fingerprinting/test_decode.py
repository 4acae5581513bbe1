import numpy as np
import pytest

from fingerprinting.decode import DecodeError, decode_audio, iter_audio
from service.media import write_audio


def test_decodes_files_to_mono_float32_at_the_asked_rate(tmp_path, programme):
    for suffix in (".wav", ".flac", ".mp3", ".m4a"):
        path = write_audio(tmp_path / f"a{suffix}", programme[: 8000 * 5], 8000)
        y = decode_audio(str(path), 8000)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(y.size - 8000 * 5) <= 2048, suffix  # AAC pads to whole 1024-sample frames


def test_chunks_are_bounded_and_max_seconds_is_honoured(tmp_path, programme):
    path = write_audio(tmp_path / "a.wav", programme, 8000)
    chunks = list(iter_audio(str(path), 8000, chunk_seconds=7.0))
    assert max(c.size for c in chunks) == 7 * 8000
    assert sum(c.size for c in chunks) == programme.size
    short = decode_audio(str(path), 8000, max_seconds=3.5)
    assert short.size == 3.5 * 8000


def test_bytes_input(tmp_path, programme):
    path = write_audio(tmp_path / "a.flac", programme[:8000], 8000)
    assert decode_audio(path.read_bytes(), 8000).size == pytest.approx(8000, abs=50)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello, this is a text file\n" * 50, "not a readable media file"),
        (bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8)), "readable"),
    ],
)
def test_bad_files_raise_decode_error(tmp_path, content, message):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=message):
        decode_audio(str(path), 8000)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        decode_audio(str(tmp_path / "nope.wav"), 8000)
    with pytest.raises(DecodeError, match="directory"):
        decode_audio(str(tmp_path), 8000)


def test_truncated_file_is_corrupt_or_short(tmp_path, programme):
    path = write_audio(tmp_path / "a.mp3", programme[: 8000 * 10], 8000, bitrate=64000)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 3])
    y = decode_audio(str(cut), 8000)  # a truncated MP3 decodes what is there
    assert 0 < y.size < 8000 * 5


def test_video_without_audio_is_refused(tmp_path):
    import av

    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height = 64, 48
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), i * 20, np.uint8), format="rgb24"
            )
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    with pytest.raises(DecodeError, match="no audio stream"):
        decode_audio(str(path), 8000)


def test_decodes_a_url_from_a_loopback_server(tmp_path, programme):  # noqa: D103
    import functools
    import http.server
    import threading

    write_audio(tmp_path / "a.mp3", programme[: 8000 * 6], 8000, bitrate=64000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.mp3"
        y = decode_audio(url, 8000, max_seconds=4.0)
        assert y.size == 4 * 8000
        with pytest.raises(DecodeError, match="cannot open stream.*404"):
            decode_audio(url.replace("a.mp3", "missing.mp3"), 8000)
    finally:
        server.shutdown()
