"""Fixtures of the capture tests: HLS media made once per session, loopback servers per test.

All media is synthesised here (no network, no media files): one 30 s programme, 320 x 180
at 25 fps with mono AAC at 22050 Hz and a keyframe every second, encoded once and then
stream-copied into the HLS variants below.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fingerprinting.capture.hls_media import HlsMedia, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer

SOURCE_SECONDS = 30.0
SOURCE_SEED = 21

#: Seconds the session spent making its HLS media, per fixture (see ``hls_generation``).
_GENERATION_SECONDS: dict[str, float] = {}


def _timed(name: str, make):  # noqa: ANN202 - tiny local helper
    started = time.perf_counter()
    value = make()
    _GENERATION_SECONDS[name] = time.perf_counter() - started
    return value


@pytest.fixture(scope="session")
def hls_generation() -> dict[str, float]:
    """Seconds spent making each media fixture so far (name -> seconds)."""
    return _GENERATION_SECONDS


@pytest.fixture(scope="session")
def hls_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hls")


@pytest.fixture(scope="session")
def hls_source(hls_dir) -> Path:
    """The 30 s A/V programme as one MPEG-TS file (H.264 + AAC, keyframe every 1 s)."""
    return _timed(
        "source",
        lambda: make_source(hls_dir / "source.ts", SOURCE_SECONDS, SOURCE_SEED),
    )


@pytest.fixture(scope="session")
def ts_bytes(hls_source) -> bytes:
    """The 30 s A/V programme as one MPEG-TS file's bytes (for MPEG-TS over HTTP)."""
    return hls_source.read_bytes()


@pytest.fixture(scope="session")
def hls_ts_2s(hls_source, hls_dir) -> HlsMedia:
    """The programme in MPEG-TS segments of 2 s (15 of them)."""
    return _timed("ts_2s", lambda: segment(hls_source, hls_dir / "ts2", 2.0))


@pytest.fixture(scope="session")
def hls_ts_6s(hls_source, hls_dir) -> HlsMedia:
    """The programme in MPEG-TS segments of 6 s (5 of them)."""
    return _timed("ts_6s", lambda: segment(hls_source, hls_dir / "ts6", 6.0))


@pytest.fixture(scope="session")
def hls_fmp4(hls_source, hls_dir) -> HlsMedia:
    """The programme in fMP4 segments of 2 s, with an init section."""
    return _timed("fmp4", lambda: segment(hls_source, hls_dir / "fmp4", 2.0, "fmp4"))


@pytest.fixture(scope="session")
def hls_audio_only(hls_source, hls_dir) -> HlsMedia:
    """The programme's sound only, in MPEG-TS segments of 2 s."""
    return _timed("audio_only", lambda: segment(hls_source, hls_dir / "aud", 2.0, video=False))


@pytest.fixture(scope="session")
def hls_video_only(hls_source, hls_dir) -> HlsMedia:
    """The programme's pictures only, in MPEG-TS segments of 2 s (``pcm`` is empty)."""
    return _timed("video_only", lambda: segment(hls_source, hls_dir / "vid", 2.0, audio=False))


@pytest.fixture
def server():
    """A loopback HTTP server for one test (127.0.0.1, free port), closed after it."""
    with LoopbackServer() as s:
        yield s


@pytest.fixture(scope="session")
def tls_ca():
    """A throw-away certificate authority (``trustme``) the HTTPS server's cert comes from."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def https_server(tls_ca):
    """A loopback HTTPS server for one test, its certificate (127.0.0.1, localhost, ::1)
    issued by ``tls_ca``."""
    with LoopbackServer(tls=tls_ca) as s:
        yield s
