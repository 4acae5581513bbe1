"""Staged tracks: a re-index builds a new generation of recordings, swapped in at once.

``vigie reindex`` fingerprints recordings for minutes or hours. Committing each recording
as it comes would let queries see a channel half old, half new; so a re-index job writes
its tracks *staged* (``add_track(..., job=...)``): their segments are durable and named by
the manifest, but only under ``staged/<job>``, where no query looks. :meth:`publish`
then replaces, in one manifest commit, every older track of the same recordings. A job
killed midway leaves its staged tracks; re-running the same job finds them
(:meth:`staged`) and fingerprints only what is missing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from .base import Track

__all__ = ["StagedTracks"]


class _Transactional(Protocol):
    def _transaction(self) -> AbstractContextManager[dict]: ...

    def refresh(self) -> None: ...

    _manifest: dict


class StagedTracks:
    """Mixin of :class:`~.embedded.EmbeddedStore`: staged tracks of re-index jobs."""

    def staged(self: _Transactional, job: str) -> dict[str, Track]:
        """The tracks ``job`` has staged so far, by source."""
        self.refresh()
        rows = self._manifest.get("staged", {}).get(job, {})
        return {v["source"]: Track(**v) for v in rows.values()}

    def jobs(self: _Transactional) -> list[str]:
        """Jobs with staged tracks (unfinished re-indexes)."""
        self.refresh()
        return sorted(self._manifest.get("staged", {}))

    def publish(self: _Transactional, job: str) -> list[Track]:
        """Make every track of ``job`` visible, replacing the tracks of the same channel and
        source, in one commit; returns the tracks published."""
        with self._transaction() as manifest:
            rows = manifest.get("staged", {}).pop(job, {})
            keys = {(v["channel_id"], v["source"]) for v in rows.values()}
            for old_id, old in list(manifest["tracks"].items()):
                if (old["channel_id"], old["source"]) in keys:
                    del manifest["tracks"][old_id]
            manifest["tracks"].update(rows)
        return [Track(**v) for v in rows.values()]

    def discard(self: _Transactional, job: str) -> None:
        """Forget ``job``'s staged tracks (their postings go at the next compaction)."""
        with self._transaction() as manifest:
            manifest.get("staged", {}).pop(job, None)
