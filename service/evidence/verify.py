"""Check an evidence bundle on its own: ``vigie evidence verify`` (no database, no
settings, no network).

What is checked, each failure reported as one line naming the file:

- ``manifest.sig`` is the Ed25519 signature of ``manifest.json``'s bytes by the key in
  ``public_key.pem`` (or by the key given, which the bundle's must then be), and the
  manifest names that key's fingerprint;
- every artefact the manifest lists is in the zip, with its size and SHA-256;
- nothing else is in the zip but the manifest, its signature, the key and review entries;
- review entries ``reviews/0001.json`` ... run from 0001 without a gap, each with a valid
  ``.sig``, its own sequence number and match, the manifest's SHA-256 and the previous
  entry's SHA-256 (a chain: an entry removed from the middle, reordered or edited shows).

What it cannot show: that entries were not cut off at the end (nothing later names
them), nor that a bundle whose key is not checked against one known from elsewhere (the
``--public-key`` option, ``GET /v1/evidence/public-key``) came from the right Vigie.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .manifest import FORMAT, MANIFEST, PUBLIC_KEY, SIGNATURE
from .reviews import ENTRY as _ENTRY
from .reviews import REVIEW_FORMAT
from .signing import load_public_key, public_key_sha256, verify

__all__ = ["BundleError", "Verification", "verify_bundle"]

#: Largest manifest, key, signature or review entry read into memory, bytes (Vigie's are
#: kilobytes; a larger one is not Vigie's, and is not read).
MAX_READ_BYTES = 16 << 20
#: Read block when hashing artefacts, bytes (artefacts are hashed as they stream).
_BLOCK = 1 << 20


class BundleError(Exception):
    """The path is not a bundle at all (not a zip file nor a folder, unreadable)."""


@dataclass
class Verification:
    """Outcome: ``problems`` (one line each; none means the bundle verifies) and what
    was checked."""

    problems: list[str] = field(default_factory=list)
    manifest: dict | None = None
    artefacts: int = 0
    reviews: int = 0
    key_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(path: Path, public_key_pem: bytes | None = None) -> Verification:
    """Verify the bundle at ``path``: the zip as downloaded, or a folder it was unzipped
    into (see the module docstring).

    Raises :class:`BundleError` when ``path`` is neither a readable zip file nor a
    folder; ``ValueError`` when ``public_key_pem`` is not an Ed25519 public key.
    """
    trusted = load_public_key(public_key_pem) if public_key_pem is not None else None
    path = Path(path)
    if path.is_dir():
        return _verify(_Folder(path), trusted)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        reason = "not a zip file" if isinstance(exc, zipfile.BadZipFile) else exc.strerror
        raise BundleError(f"{path}: {reason or exc}") from None
    with zf:
        return _verify(_Zip(zf), trusted)


class _Zip:
    """The members of a zip (names as stored, duplicates included)."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.names = [i.filename for i in zf.infolist() if not i.filename.endswith("/")]

    def size(self, name: str) -> int:
        return self.zf.getinfo(name).file_size

    def open(self, name: str) -> BinaryIO:
        return self.zf.open(name)


class _Folder:
    """The files under an unzipped bundle's folder, as relative POSIX paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")


def _verify(members: _Zip | _Folder, trusted: object | None) -> Verification:
    out = Verification()
    problems = out.problems
    names = members.names
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: appears more than once in the zip")
    files: dict[str, bytes] = {}
    digests: dict[str, tuple[int, str]] = {}
    for name in dict.fromkeys(names):
        small = name in (MANIFEST, SIGNATURE, PUBLIC_KEY) or _ENTRY.match(name)
        if small and members.size(name) > MAX_READ_BYTES:
            problems.append(f"{name}: larger than {MAX_READ_BYTES:,} bytes: not Vigie's")
            continue
        try:
            with members.open(name) as f:
                if small:
                    files[name] = f.read()
                    digests[name] = (len(files[name]), _sha(files[name]))
                else:
                    digests[name] = _hash_stream(f)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            problems.append(f"{name}: cannot be read from the bundle ({exc})")
    for required in (MANIFEST, SIGNATURE, PUBLIC_KEY):
        if required not in files:
            problems.append(f"{required}: missing from the bundle")
    if problems and (MANIFEST not in files or PUBLIC_KEY not in files):
        return out
    # the key: the bundle's own, which must be the trusted one when one is given
    try:
        own = load_public_key(files[PUBLIC_KEY])
    except ValueError as exc:
        problems.append(f"{PUBLIC_KEY}: {exc}")
        return out
    key = trusted or own
    out.key_sha256 = public_key_sha256(key)
    if trusted is not None and public_key_sha256(own) != out.key_sha256:
        problems.append(f"{PUBLIC_KEY}: not the public key given to check the bundle with")
    manifest_bytes = files[MANIFEST]
    if SIGNATURE in files and not verify(key, files[SIGNATURE], manifest_bytes):
        problems.append(f"{MANIFEST}: the signature in {SIGNATURE} does not match it")
    try:
        manifest = json.loads(manifest_bytes)
        listed = {a["path"]: a for a in manifest["artefacts"]}
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{MANIFEST}: not a Vigie manifest ({exc})")
        return out
    out.manifest = manifest
    if manifest.get("format") != FORMAT:
        problems.append(f"{MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    named = (manifest.get("signing_key") or {}).get("public_key_sha256")
    if named != out.key_sha256:
        problems.append(f"{MANIFEST}: names signing key {named}, not the key that checks it")
    for rel, item in listed.items():
        got = digests.get(rel)
        if got is None:
            problems.append(f"{rel}: listed in the manifest but missing from the bundle")
        elif got != (item.get("bytes"), item.get("sha256")):
            problems.append(f"{rel}: SHA-256 does not match the manifest")
    out.artefacts = len(listed)
    entries: dict[int, dict[str, bytes]] = {}
    for name in digests:
        m = _ENTRY.match(name)
        if m and name in files:
            entries.setdefault(int(m.group(1)), {})[m.group(2)] = files[name]
        elif name not in listed and name not in (MANIFEST, SIGNATURE, PUBLIC_KEY):
            problems.append(f"{name}: not listed in the manifest")
    out.reviews = _check_chain(entries, key, manifest, _sha(manifest_bytes), problems)
    return out


def _check_chain(
    entries: dict[int, dict[str, bytes]],
    key: object,
    manifest: dict,
    manifest_sha256: str,
    problems: list[str],
) -> int:
    previous: str | None = None
    for n, sequence in enumerate(sorted(entries), start=1):
        name = f"reviews/{sequence:04d}.json"
        parts = entries[sequence]
        if sequence != n:
            problems.append(f"{name}: review entry {n:04d} is missing before it")
        if "json" not in parts or "sig" not in parts:
            missing = "json" if "json" not in parts else "sig"
            problems.append(f"reviews/{sequence:04d}.{missing}: missing (its pair is there)")
            previous = None
            continue
        data = parts["json"]
        if not verify(key, parts["sig"], data):
            problems.append(f"{name}: the signature in reviews/{sequence:04d}.sig does not match")
        try:
            entry = json.loads(data)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            problems.append(f"{name}: not a review entry ({exc})")
            previous = _sha(data)
            continue
        checks = (
            (entry.get("format") == REVIEW_FORMAT, f"format is not {REVIEW_FORMAT!r}"),
            (entry.get("sequence") == sequence, f"says it is entry {entry.get('sequence')}"),
            (entry.get("match_id") == manifest.get("match_id"), "is of another match"),
            (entry.get("manifest_sha256") == manifest_sha256, "names another manifest"),
            (entry.get("previous_sha256") == previous, "does not follow the entry before it"),
        )
        for ok, what in checks:
            if not ok:
                problems.append(f"{name}: {what}")
        previous = _sha(data)
    return len(entries)


def _hash_stream(f: BinaryIO) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: f.read(_BLOCK), b""):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
