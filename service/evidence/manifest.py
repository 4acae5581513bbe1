"""A match's signed manifest: made once, at its first export, and never rewritten.

``<data_dir>/evidence/matches/<match_id>/``::

    manifest.json          what the bundle holds (below), indented JSON, sorted keys
    manifest.sig           raw Ed25519 signature of manifest.json's bytes
    public_key.pem         the public key that signed it
    record/match.json      the match as recorded when sealed
    record/review_log.json the audit entries (reviews) of the match when sealed
    reviews/NNNN.json|sig  reviews made later, one signed entry each (:mod:`.reviews`)

The manifest lists every artefact of the scan and the two ``record/`` files with their
size, SHA-256 and media type, so a bundle of the match, downloaded now or in a year,
carries the same signed bytes. The folder is built in a staging folder and renamed into
place; a process killed while sealing leaves no half manifest.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fingerprinting.capture.evidence import utc_now

from .. import __version__
from ..settings import Settings
from .artefacts import ScanArtefacts, evidence_root
from .files import (
    fsync_dir,
    fsync_tree,
    media_type,
    pretty_json,
    sha256_file,
    sha256_hex,
    write_new,
)
from .signing import EvidenceKey

__all__ = [
    "FORMAT",
    "MANIFEST",
    "PUBLIC_KEY",
    "SIGNATURE",
    "EvidenceUnavailable",
    "MatchFacts",
    "SealedMatch",
    "match_folder",
    "seal_match",
]

FORMAT = "vigie-evidence/1"
MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "public_key.pem"
RECORD_MATCH, RECORD_REVIEWS = "record/match.json", "record/review_log.json"


class EvidenceUnavailable(Exception):
    """A match has no bundle to give, and why (no stored artefacts, damaged storage)."""


@dataclass(frozen=True)
class MatchFacts:
    """What the manifest says about a match, read from the database when it is sealed.

    ``match``: the match row as JSON; ``review_log``: its audit entries so far (each with
    its ``id``); ``verdict``: the match's verdict at that moment.
    """

    match_id: int
    scan_id: int
    channel_id: str
    verdict: str
    scan_verdict: str | None
    match: dict
    review_log: list[dict] = field(default_factory=list)


def matches_root(settings: Settings) -> Path:
    return evidence_root(settings) / "matches"


def match_folder(settings: Settings, match_id: int) -> Path:
    return matches_root(settings) / str(int(match_id))


@dataclass(frozen=True)
class SealedMatch:
    """A sealed match: its manifest (bytes as signed, and parsed) and where each file
    it lists is stored."""

    folder: Path
    scan_folder: Path
    manifest_bytes: bytes
    manifest: dict

    @classmethod
    def load(cls, settings: Settings, match_id: int) -> SealedMatch | None:
        folder = match_folder(settings, match_id)
        if not (folder / MANIFEST).is_file():
            return None
        data = (folder / MANIFEST).read_bytes()
        manifest = json.loads(data)
        scan = evidence_root(settings) / "scans" / str(int(manifest["scan_id"]))
        return cls(folder, scan, data, manifest)

    @property
    def manifest_sha256(self) -> str:
        return sha256_hex(self.manifest_bytes)

    @property
    def match_id(self) -> int:
        return int(self.manifest["match_id"])

    def source(self, relpath: str) -> Path:
        """The stored file of a listed artefact."""
        if relpath.startswith("record/"):
            return self.folder / relpath
        return self.scan_folder / relpath


def seal_match(settings: Settings, facts: MatchFacts, key: EvidenceKey) -> SealedMatch:
    """The match's sealed manifest, made now if it has none (the caller holds the
    match's lock, see :func:`service.evidence.reviews.match_lock`).

    Raises :class:`EvidenceUnavailable` when the scan has no stored artefacts.
    """
    sealed = SealedMatch.load(settings, facts.match_id)
    if sealed is not None:
        return sealed
    stored = ScanArtefacts.open(settings, facts.scan_id)
    if stored is None:
        raise EvidenceUnavailable(
            f"scan {facts.scan_id} of match {facts.match_id} has no stored artefacts "
            "(it ran before Vigie kept evidence, or its artefacts were removed)"
        )
    final = match_folder(settings, facts.match_id)
    staging = matches_root(settings) / ".staging" / f"{facts.match_id}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write_new(staging / RECORD_MATCH, pretty_json(facts.match))
        write_new(staging / RECORD_REVIEWS, pretty_json(facts.review_log))
        entries = [_entry(rel, stored.path(rel)) for rel in stored.files()]
        entries += [_entry(rel, staging / rel) for rel in (RECORD_MATCH, RECORD_REVIEWS)]
        capture = stored.read_json("capture/evidence.json") or {}
        manifest = {
            "format": FORMAT,
            "vigie_version": __version__,
            "created_utc": utc_now(),
            "scan_id": facts.scan_id,
            "match_id": facts.match_id,
            "channel_id": facts.channel_id,
            "verdict": facts.verdict,
            "scan_verdict": facts.scan_verdict,
            "capture": {
                "requested_url": capture.get("requested_url"),
                "started_utc": capture.get("started_utc"),
                "finished_utc": capture.get("finished_utc"),
                "sealed_sha256": capture.get("sealed_sha256"),
            },
            "fingerprint_params": stored.read_json("params.json"),
            "signing_key": {
                "algorithm": "Ed25519",
                "public_key_sha256": key.public_sha256,
                "file": PUBLIC_KEY,
            },
            "signature_file": SIGNATURE,
            "artefacts": sorted(entries, key=lambda e: e["path"]),
        }
        data = pretty_json(manifest)
        write_new(staging / MANIFEST, data)
        write_new(staging / SIGNATURE, key.sign(data))
        write_new(staging / PUBLIC_KEY, key.public_pem)
        (staging / "reviews").mkdir()
        fsync_tree(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    loaded = SealedMatch.load(settings, facts.match_id)
    assert loaded is not None
    return loaded


def _entry(relpath: str, path: Path) -> dict:
    size, digest = sha256_file(path)
    return {"path": relpath, "bytes": size, "sha256": digest, "media_type": media_type(relpath)}
