"""Reviews after sealing: an append-only chain of signed entries beside the manifest.

Each review of a sealed match adds ``reviews/NNNN.json`` (NNNN from 0001) and its raw
Ed25519 signature ``reviews/NNNN.sig``. An entry names the manifest it belongs to and
the entry before it by SHA-256 (``manifest_sha256``, ``previous_sha256``: ``null`` for
the first), so removing, reordering or editing an entry breaks the chain; the manifest
itself is never touched. Entries are made from the audit log (one per ``review.*`` audit
entry not yet in the chain nor in the sealed ``record/review_log.json``), so a review
whose entry was not written (the process died after the review was committed) gets it
at the next export.

Appends hold an exclusive ``flock`` on ``matches/<match_id>.lock`` (the same lock covers
sealing): processes of one host sharing the data folder take turns.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

from fingerprinting.capture.evidence import utc_now

from ..settings import Settings
from .files import pretty_json, sha256_hex, write_durable
from .manifest import RECORD_REVIEWS, SealedMatch, matches_root
from .signing import EvidenceKey

__all__ = [
    "ENTRY",
    "REVIEW_FORMAT",
    "KeyChanged",
    "append_reviews",
    "chain",
    "entry_paths",
    "match_lock",
]

REVIEW_FORMAT = "vigie-evidence-review/1"
ENTRY = re.compile(r"^reviews/(\d{4,})\.(json|sig)$")


class KeyChanged(Exception):
    """The signing key is not the one that sealed the match: entries signed now would
    not verify with the bundle's key."""


@contextmanager
def match_lock(settings: Settings, match_id: int) -> Iterator[None]:
    """Hold the match's evidence lock (sealing and appending take it)."""
    root = matches_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{int(match_id)}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def chain(sealed: SealedMatch) -> list[tuple[int, bytes, bytes]]:
    """``(sequence, entry bytes, signature bytes)`` of the stored entries, in order. An
    entry counts once its ``.json`` exists (it is written after its ``.sig``)."""
    folder = sealed.folder / "reviews"
    out = []
    for path in sorted(folder.glob("*.json")):
        if not path.stem.isdigit():
            continue
        sig = path.with_suffix(".sig")
        out.append((int(path.stem), path.read_bytes(), sig.read_bytes()))
    return sorted(out)


def append_reviews(sealed: SealedMatch, key: EvidenceKey, audit: list[dict]) -> int:
    """Append a signed entry for each review in ``audit`` (the match's audit entries, in
    order, as dicts with ``id``, ``at``, ``actor``, ``action``, ``note``, ``data``) that
    is neither in the chain nor in the sealed review log; returns how many were added.
    The caller holds :func:`match_lock`.

    Raises :class:`KeyChanged` when ``key`` is not the key that sealed the match.
    """
    if key.public_sha256 != sealed.manifest["signing_key"]["public_key_sha256"]:
        raise KeyChanged(
            f"match {sealed.match_id} was sealed with key "
            f"{sealed.manifest['signing_key']['public_key_sha256'][:16]}..., not the "
            f"current {key.public_sha256[:16]}..."
        )
    entries = chain(sealed)
    recorded = {e.get("id") for e in json.loads((sealed.folder / RECORD_REVIEWS).read_bytes())}
    recorded |= {json.loads(data).get("audit_id") for _, data, _ in entries}
    previous = sha256_hex(entries[-1][1]) if entries else None
    sequence = entries[-1][0] if entries else 0
    added = 0
    for row in audit:
        if not str(row.get("action", "")).startswith("review.") or row.get("id") in recorded:
            continue
        sequence += 1
        data = row.get("data") or {}
        entry = {
            "format": REVIEW_FORMAT,
            "sequence": sequence,
            "match_id": sealed.match_id,
            "audit_id": row.get("id"),
            "action": row.get("action"),
            "state": data.get("state"),
            "note": row.get("note"),
            "reviewer": data.get("key_name"),
            "reviewer_key_id": row.get("actor"),
            "reviewed_utc": _iso(row.get("at")),
            "signed_utc": utc_now(),
            "manifest_sha256": sealed.manifest_sha256,
            "previous_sha256": previous,
        }
        body = pretty_json(entry)
        path = sealed.folder / "reviews" / f"{sequence:04d}.json"
        write_durable(path.with_suffix(".sig"), key.sign(body))
        write_durable(path, body)  # last: the entry exists from here on
        previous = sha256_hex(body)
        recorded.add(row.get("id"))
        added += 1
    return added


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def entry_paths(sequence: int) -> tuple[str, str]:
    """The zip paths of entry ``sequence``."""
    return f"reviews/{sequence:04d}.json", f"reviews/{sequence:04d}.sig"
