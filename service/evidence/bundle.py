"""Assemble a match's evidence bundle (a zip) from its stored, immutable files.

Entries, in this order: ``manifest.json``, ``manifest.sig``, ``public_key.pem``, every
artefact the manifest lists (in its order), then ``reviews/NNNN.json`` and ``.sig`` of
each review entry. Every entry carries the manifest's creation time and mode 0444, and
JSON, playlists and PEM are deflated while media is stored as is, so the same stored
files always give the same zip bytes.

Each artefact is hashed as it is copied; one that no longer matches its manifest entry
(damaged or altered storage) stops the export with :class:`EvidenceUnavailable` naming
it, instead of handing out a bundle that cannot verify.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import datetime
from typing import BinaryIO

from .manifest import MANIFEST, PUBLIC_KEY, SIGNATURE, EvidenceUnavailable, SealedMatch
from .reviews import chain, entry_paths

__all__ = ["write_bundle"]

#: Artefacts compressed in the zip (the rest, media, is stored: it is compressed already).
_DEFLATE = (".json", ".m3u8", ".pem", ".wav")
#: Copy block, bytes.
_BLOCK = 1 << 20


def write_bundle(sealed: SealedMatch, out: BinaryIO) -> int:
    """Write the bundle of ``sealed`` to ``out`` (a seekable binary file); returns the
    number of zip entries."""
    when = _zip_time(sealed.manifest["created_utc"])
    count = 0
    with zipfile.ZipFile(out, "w") as zf:

        def add(name: str, data: bytes) -> None:
            nonlocal count
            zf.writestr(_info(name, when), data)
            count += 1

        add(MANIFEST, sealed.manifest_bytes)
        add(SIGNATURE, (sealed.folder / SIGNATURE).read_bytes())
        add(PUBLIC_KEY, (sealed.folder / PUBLIC_KEY).read_bytes())
        for item in sealed.manifest["artefacts"]:
            rel = item["path"]
            digest, size = hashlib.sha256(), 0
            try:
                with open(sealed.source(rel), "rb") as src, zf.open(_info(rel, when), "w") as dst:
                    for block in iter(lambda src=src: src.read(_BLOCK), b""):
                        digest.update(block)
                        size += len(block)
                        dst.write(block)
            except FileNotFoundError:
                raise EvidenceUnavailable(
                    f"the stored evidence of match {sealed.match_id} is damaged: {rel} is missing"
                ) from None
            if digest.hexdigest() != item["sha256"] or size != item["bytes"]:
                raise EvidenceUnavailable(
                    f"the stored evidence of match {sealed.match_id} is damaged: "
                    f"{rel} no longer matches its manifest entry"
                )
            count += 1
        for sequence, data, sig in chain(sealed):
            name, sig_name = entry_paths(sequence)
            add(name, data)
            add(sig_name, sig)
    return count


def _info(name: str, when: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = (
        zipfile.ZIP_DEFLATED if name.lower().endswith(_DEFLATE) else zipfile.ZIP_STORED
    )
    info.external_attr = (0o100444 & 0xFFFF) << 16
    info.create_system = 3  # Unix, so the mode above is read as one
    return info


def _zip_time(utc: str) -> tuple[int, int, int, int, int, int]:
    t = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)
