"""Media in, fingerprints out: decoding, spectral peaks, triplet hashes, alignment.

No database and no web here; ``reference_index`` and ``service`` build on this package.
"""

from .align import Alignment, NullCalibration, vote
from .audio import fingerprint, fingerprint_stream, query_peaks, query_print
from .decode import DecodeError, decode_audio, iter_audio
from .params import AudioParams
from .types import AudioPrint, Peaks, QueryPrint

__all__ = [
    "Alignment",
    "AudioParams",
    "AudioPrint",
    "DecodeError",
    "NullCalibration",
    "Peaks",
    "QueryPrint",
    "decode_audio",
    "fingerprint",
    "fingerprint_stream",
    "iter_audio",
    "query_peaks",
    "query_print",
    "vote",
]
