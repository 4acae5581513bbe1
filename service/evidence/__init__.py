"""Evidence of scans and matches, kept so a takedown stands after the stream is gone.

- :mod:`.writer`: a scan's artefacts (capture record, playlists and media as received,
  the sample's sound and frames, result), written once at scan time, crash-safe, with
  :mod:`.matched` (alignment points and reference frames of the matches).
- :mod:`.artefacts`: their layout and read API (:class:`ScanArtefacts`, used by the UI).
- :mod:`.signing`: the installation's Ed25519 key.
- :mod:`.manifest`, :mod:`.reviews`, :mod:`.bundle`: a match's signed manifest (made once),
  its chain of signed review entries, and the zip assembled from them.
- :mod:`.verify`: checking a bundle with nothing but the bundle (``vigie evidence verify``).
- :mod:`.export`: the above for the API, from the database.
"""

from .artefacts import ScanArtefacts, evidence_root, scan_folder
from .export import evidence_key, export_bundle, record_reviews
from .manifest import EvidenceUnavailable, SealedMatch
from .verify import BundleError, Verification, verify_bundle
from .writer import StagedArtefacts, fingerprint_params, scan_record, stage_scan

__all__ = [
    "BundleError",
    "EvidenceUnavailable",
    "ScanArtefacts",
    "SealedMatch",
    "StagedArtefacts",
    "Verification",
    "evidence_key",
    "evidence_root",
    "export_bundle",
    "fingerprint_params",
    "record_reviews",
    "scan_folder",
    "scan_record",
    "stage_scan",
    "verify_bundle",
]
