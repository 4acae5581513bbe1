"""Media in, fingerprints out: decoding, spectral peaks, triplet hashes, frame hashes,
alignment.

No database and no web here; ``reference_index`` and ``service`` build on this package.
"""

from .align import Alignment, NullCalibration, vote
from .audio import fingerprint, fingerprint_stream, query_peaks, query_print
from .decode import (
    DecodeError,
    decode_audio,
    decode_frames,
    iter_audio,
    iter_frames,
    iter_media,
)
from .params import AudioParams, VideoParams
from .stream import AudioStream
from .types import AudioPrint, FrameBatch, Peaks, QueryPrint, VideoPrint, VideoQuery
from .video import fingerprint_frames, video_query

__all__ = [
    "Alignment",
    "AudioParams",
    "AudioPrint",
    "AudioStream",
    "DecodeError",
    "FrameBatch",
    "NullCalibration",
    "Peaks",
    "QueryPrint",
    "VideoParams",
    "VideoPrint",
    "VideoQuery",
    "decode_audio",
    "decode_frames",
    "fingerprint",
    "fingerprint_frames",
    "fingerprint_stream",
    "iter_audio",
    "iter_frames",
    "iter_media",
    "query_peaks",
    "query_print",
    "video_query",
    "vote",
]
