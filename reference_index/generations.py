"""Index generations: a whole index rebuilt beside the one in use, then swapped in at once.

After a change of fingerprint parameters nothing in the index can be reused, and the
stores refuse to open (:class:`~.store.base.ParamsMismatch`). ``vigie reindex --all``
builds a new *generation* in ``<index>/gen-NNNNNN/`` from every recording the current one
holds (and the catalog's assets), marked ``BUILDING`` until it is complete; then it points
``<index>/CURRENT`` at it with one atomic rename. Readers resolve ``CURRENT`` when they
open the index, and live writers reopen it when it changes (:meth:`Index.swapped`), so a
query sees the old index or the new one, never a mix. A build killed midway is resumed by
the next ``--all`` (same parameters), recordings already staged are not fingerprinted
again. The previous generation is kept until the next swap (readers may still hold it);
older ones are deleted.

An index made before generations existed (``audio/``, ``video/`` and ``thumbs/`` directly
under the index folder) is generation ``"."``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .store.manifest import MANIFEST, write_json_atomic

__all__ = ["CURRENT", "Recording", "current_generation", "new_generation", "recordings", "swap"]

CURRENT = "CURRENT"
BUILDING = "BUILDING"


def current_generation(root: Path) -> str:
    """Name of the generation in use (``"."`` for a pre-generations index)."""
    pointer = Path(root) / CURRENT
    if pointer.exists():
        return json.loads(pointer.read_text())["generation"]
    return "."


@dataclass(frozen=True)
class Recording:
    """A recording some generation indexed: what ``--all`` must fingerprint again."""

    channel_id: str
    source: str


def recordings(home: Path) -> list[Recording]:
    """The asset recordings of a generation's folder, read from its manifests as they are
    (whatever parameters they were built with)."""
    found: set[Recording] = set()
    for modality in ("audio", "video"):
        path = Path(home) / modality / MANIFEST
        if path.exists():
            manifest = json.loads(path.read_text())
            for track in manifest["tracks"].values():
                if track["kind"] == "asset":
                    found.add(Recording(track["channel_id"], track["source"]))
    return sorted(found, key=lambda r: (r.channel_id, r.source))


def new_generation(root: Path, params: dict) -> str:
    """The generation to build: an unfinished one made with ``params`` (to resume), else a
    new folder marked ``BUILDING``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    gens = sorted(p for p in root.glob("gen-*") if p.is_dir())
    for gen in gens:
        marker = gen / BUILDING
        if marker.exists() and json.loads(marker.read_text()) == params:
            return gen.name
    number = 1 + max((int(p.name[4:]) for p in gens if p.name[4:].isdigit()), default=0)
    name = f"gen-{number:06d}"
    (root / name).mkdir()
    write_json_atomic(root / name / BUILDING, params)
    return name


def swap(root: Path, generation: str) -> list[str]:
    """Make ``generation`` current (one atomic rename), then delete generations older than
    the one it replaces. Returns the names deleted."""
    root = Path(root)
    previous = current_generation(root)
    (root / generation / BUILDING).unlink(missing_ok=True)
    write_json_atomic(root / CURRENT, {"generation": generation})
    deleted = []
    for gen in root.glob("gen-*"):
        if gen.name not in (generation, previous) and not (gen / BUILDING).exists():
            shutil.rmtree(gen, ignore_errors=True)
            deleted.append(gen.name)
    if previous != ".":
        for legacy in ("audio", "video", "thumbs"):  # the pre-generations layout, two swaps ago
            if (root / legacy).is_dir():
                shutil.rmtree(root / legacy, ignore_errors=True)
                deleted.append(legacy)
    return sorted(deleted)
