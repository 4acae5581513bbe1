"""PostgreSQL posting store: postings in a table partitioned by UTC hour, loaded with COPY.

One store is one PostgreSQL schema (``vigie_audio``, ``vigie_video``, or a throw-away one
in tests)::

    meta      one row: fingerprint params, key dtype, key spaces, a version bumped by
              every write (readers reload tracks only when it moved)
    tracks    id, channel, source, kind, start, frames, hop, stamp, job (staged tracks:
              the re-index job, NULL once visible), coverage (UTC intervals, JSON)
    spans     (bucket, track) -> first and end frame, postings: what each partition holds,
              so retention and the window know which partitions to drop or read without
              scanning them
    postings  (key int8, track int4, frame int4, bucket int4, part int2)
              PARTITION BY RANGE (bucket); btree on (part, key) in every partition
      postings_assets   bucket < 0: every asset track (bucket -1)
      postings_hNNNNNN  bucket = UTC hour of the posting (epoch seconds // 3600), live

Why this shape:

* **Hour partitions** make retention a ``DROP TABLE`` of whole hours (no ``DELETE``, no
  vacuum debt), and a live query's window names the one or two hours it needs, so the
  planner prunes every other partition before reading an index page.
* **Keys as int8** in an order-preserving mapping (uint32 as is; uint64 XOR 2^63, then as
  signed) so a key prefix is one contiguous range of the btree, as in a segment.
* **Rows of 24 data bytes**: int8 + 3 x int4 + int2 pads to the same 24 bytes as without
  the bucket column, so partitioning by hour costs nothing per row.
* **COPY BINARY built by numpy** both ways: postings go in as one structured array
  written to ``COPY ... FROM STDIN (FORMAT BINARY)``, hits come back from ``COPY (SELECT
  ...) TO STDOUT (FORMAT BINARY)`` parsed by ``np.frombuffer`` -- no Python object per
  posting (``bench.posting_store`` measures this against psycopg's ``write_row``).
* **One round trip per lookup**: the distinct query keys travel as one array literal
  (``key = ANY('{...}')``, or ``unnest`` joined, see ``lookup_sql``); prefix lookups send
  their ranges through ``unnest`` joined on the btree.

Removed and replaced tracks disappear from ``tracks`` at once; their asset postings stay
until :meth:`compact` (a ``DELETE`` of what no track owns), their live postings until
their hours are dropped, and queries filter them out -- the semantics of the embedded
store. Appends go to an in-memory head (:class:`~.head.Head`, searched by this process)
and are written by :meth:`flush`, with their coverage, in one transaction. Writers of one
schema serialize on an advisory lock; readers never wait.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .base import FrameWindow, Hits, ParamsMismatch, Track
from .head import Head
from .manifest import params_diff
from .segment import equal_ranges
from .upkeep import merge_intervals

__all__ = ["ASSET_BUCKET", "PostgresStore", "libpq_url"]

#: Bucket (partition key) of every asset posting; live postings use their UTC hour (>= 0).
ASSET_BUCKET = -1
#: Seconds per live partition.
BUCKET_SECONDS = 3600.0
#: Postings per COPY message written (x 44 bytes: about 11 MB).
COPY_BATCH = 250_000

_SIGN = np.uint64(1 << 63)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"
# One posting as written: 5 fields, each preceded by its length (COPY BINARY row format).
_ROW_IN = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("key", ">i8"), ("l1", ">i4"), ("track", ">i4"),
     ("l2", ">i4"), ("frame", ">i4"), ("l3", ">i4"), ("bucket", ">i4"), ("l4", ">i4"),
     ("part", ">i2")]
)  # fmt: skip
# One hit as read: key, track, frame.
_ROW_OUT = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("key", ">i8"), ("l1", ">i4"), ("track", ">i4"),
     ("l2", ">i4"), ("frame", ">i4")]
)  # fmt: skip


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r} (expected postgresql://...)")
    return "postgresql://" + rest


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (schema names come from settings)."""
    if not name or "\0" in name:
        raise ValueError(f"bad schema name {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _array(values: np.ndarray) -> str:
    """An integer array as a SQL array literal (numbers only: nothing to escape)."""
    return "'{" + ",".join(map(str, np.asarray(values, np.int64).tolist())) + "}'"


class PostgresStore:
    """Posting store in one PostgreSQL schema; any number of reader and writer processes.

    Parameters
    ----------
    url : str
        ``postgresql://...`` or SQLAlchemy's ``postgresql+psycopg://...``.
    params : dict
        Fingerprint parameters of the postings; a schema made with others raises
        :class:`ParamsMismatch`.
    key_dtype : numpy dtype
        uint32 (audio triplet hashes) or uint64 (frame hash chunks).
    parts : int
        Key spaces (multi-index hashing: one per hash chunk).
    prefix_bits : int or None
        Accepted for the embedded store's signature; a btree answers any prefix length.
    schema : str
        PostgreSQL schema holding this store (created if missing).
    lookup_sql : str
        ``"any"``: ``key = ANY(array)`` (one index descent per distinct key), or
        ``"unnest"``: the keys ``unnest``-ed and joined. ``bench.posting_store`` measured
        them within 15 % of each other either way (``"any"`` faster at 100 x 1 h,
        ``"unnest"`` at 100 x 3 h); the default is the simpler plan.
    max_staleness : float
        Seconds a reader may reuse its snapshot of the tracks before asking whether another
        process wrote (one round trip). ``Index.query`` asks for tracks and coverage many
        times per query; 0 checks every time.
    """

    def __init__(
        self,
        url: str,
        params: dict,
        key_dtype: np.dtype = np.dtype(np.uint32),
        *,
        parts: int = 1,
        prefix_bits: int | None = None,
        schema: str = "vigie_postings",
        lookup_sql: str = "any",
        max_staleness: float = 0.05,
    ):
        import psycopg

        if lookup_sql not in ("any", "unnest"):
            raise ValueError(f"lookup_sql must be 'any' or 'unnest', not {lookup_sql!r}")
        self.url = libpq_url(url)
        self.params = dict(params)
        self.key_dtype = np.dtype(key_dtype)
        if self.key_dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
            raise ValueError(f"key_dtype must be uint32 or uint64, not {self.key_dtype}")
        self.parts = int(parts)
        self.prefix_bits = prefix_bits
        self.schema = schema
        self.lookup_sql = lookup_sql
        self.max_staleness = float(max_staleness)
        self._s = _ident(schema)
        self._lock_id = zlib.crc32(schema.encode()) - 2**31
        self.conn = psycopg.connect(self.url, autocommit=True)
        self._version = -1
        self._checked = 0.0
        self._tracks: dict[int, Track] = {}
        self._staged: dict[str, dict[str, Track]] = {}
        self._coverage: dict[int, list[tuple[float, float]]] = {}
        self._axes: dict[int, tuple[float, float]] = {}
        self._live_ids = np.empty(0, np.int64)
        self._head = Head(self.parts, self.key_dtype)
        self._create()

    # -- schema ----------------------------------------------------------------------------
    def _create(self) -> None:
        s = self._s
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.meta (id int PRIMARY KEY CHECK (id = 1), "
                "params jsonb NOT NULL, key_dtype text NOT NULL, parts int NOT NULL, "
                "version bigint NOT NULL DEFAULT 0)"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.tracks (id int GENERATED BY DEFAULT AS "
                "IDENTITY PRIMARY KEY, channel_id text NOT NULL, source text NOT NULL, "
                "kind text NOT NULL, start float8 NOT NULL, frames bigint NOT NULL, "
                "hop_seconds float8 NOT NULL, stamp text NOT NULL DEFAULT '', job text, "
                "coverage jsonb NOT NULL DEFAULT '[]')"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.spans (bucket int NOT NULL, track int NOT "
                "NULL, first bigint NOT NULL, stop bigint NOT NULL, postings bigint NOT NULL, "
                "PRIMARY KEY (bucket, track))"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.postings (key int8 NOT NULL, track int4 NOT "
                "NULL, frame int4 NOT NULL, bucket int4 NOT NULL, part int2 NOT NULL) "
                "PARTITION BY RANGE (bucket)"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.postings_assets PARTITION OF {s}.postings "
                "FOR VALUES FROM (MINVALUE) TO (0)"
            )
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS postings_part_key ON {s}.postings (part, key)"
            )
            row = self.conn.execute(f"SELECT params, key_dtype, parts FROM {s}.meta").fetchone()
            if row is None:
                self.conn.execute(
                    f"INSERT INTO {s}.meta (id, params, key_dtype, parts) VALUES (1, %s, %s, %s)",
                    (json.dumps(self.params), self.key_dtype.str, self.parts),
                )
                row = (self.params, self.key_dtype.str, self.parts)
        params, key_dtype, parts = row
        where = f"PostgreSQL schema {self.schema!r}"
        if parts != self.parts or np.dtype(key_dtype) != self.key_dtype:
            raise ParamsMismatch(
                f"{where} holds {parts} key spaces of {key_dtype}, not {self.parts} of "
                f"{self.key_dtype.str}"
            )
        if params != self.params:
            raise ParamsMismatch(
                f"{where} was built with other fingerprint parameters "
                f"({params_diff(params, self.params)}); run `vigie reindex --all`"
            )

    def drop(self) -> None:
        """Delete the whole schema (every posting and track of this store)."""
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self._s} CASCADE")
        self._version = -1

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # -- keys ------------------------------------------------------------------------------
    def _to_db(self, keys: np.ndarray) -> np.ndarray:
        """Keys as int8 values whose signed order is the keys' unsigned order."""
        keys = np.asarray(keys, self.key_dtype)
        if self.key_dtype == np.uint32:
            return keys.astype(np.int64)
        return (keys ^ _SIGN).view(np.int64)

    def _from_db(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, np.int64)
        if self.key_dtype == np.uint32:
            return values.astype(np.uint32)
        return values.view(np.uint64) ^ _SIGN

    # -- reading ---------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Reload tracks and coverage if a writer committed since the last look (at most
        one round trip per ``max_staleness`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < self.max_staleness:
            return
        version = self.conn.execute(f"SELECT version FROM {self._s}.meta").fetchone()[0]
        self._checked = now
        if version == self._version:
            return
        rows = self.conn.execute(
            f"SELECT id, channel_id, source, kind, start, frames, hop_seconds, stamp, job, "
            f"coverage FROM {self._s}.tracks ORDER BY id"
        ).fetchall()
        tracks, staged, coverage = {}, {}, {}
        for *rec, job, cov in rows:
            t = Track(*rec)
            if job is None:
                tracks[t.id] = t
                coverage[t.id] = [tuple(iv) for iv in cov]
            else:
                staged.setdefault(job, {})[t.source] = t
        self._tracks, self._staged, self._coverage = tracks, staged, coverage
        self._axes = {t.id: (t.start, t.hop_seconds) for t in tracks.values()}
        self._live_ids = np.array(sorted(tracks), np.int64)
        self._version = version

    def tracks(self) -> dict[int, Track]:
        """Tracks visible to queries."""
        self.refresh()
        return dict(self._tracks)

    def coverage(self, track_id: int) -> list[tuple[float, float]]:
        """UTC intervals ``(start, end)`` a live track's feed was followed and flushed."""
        self.refresh()
        return list(self._coverage.get(int(track_id), []))

    def staged(self, job: str) -> dict[str, Track]:
        """The tracks ``job`` has staged so far, by source."""
        self.refresh(force=True)
        return dict(self._staged.get(job, {}))

    def jobs(self) -> list[str]:
        """Jobs with staged tracks (unfinished re-indexes)."""
        self.refresh(force=True)
        return sorted(self._staged)

    def posting_count(self) -> int:
        """Postings stored, every key space counted (including those of removed tracks
        not yet compacted or expired)."""
        row = self.conn.execute(f"SELECT coalesce(sum(postings), 0) FROM {self._s}.spans")
        return int(row.fetchone()[0]) * self.parts

    def disk_bytes(self) -> int:
        """Bytes of the postings partitions with their indexes (``pg_total_relation_size``)."""
        row = self.conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM "
            "pg_partition_tree(%s::regclass)",
            (f"{self._s}.postings",),
        ).fetchone()
        return int(row[0])

    def partitions(self) -> list[int]:
        """Buckets of the live partitions (UTC hours), oldest first."""
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (f"{self._s}.postings",),
        ).fetchall()
        return sorted(int(r[0][len("postings_h") :]) for r in rows if r[0].startswith("postings_h"))

    def _buckets(self, within: FrameWindow) -> tuple[np.ndarray, np.ndarray]:
        """Partitions (buckets) and visible tracks a window reads."""
        buckets: set[int] = set()
        ids = []
        rows = zip(within.track.tolist(), within.lo.tolist(), within.hi.tolist(), strict=True)
        for tid, lo, hi in rows:
            t = self._tracks.get(tid)
            if t is None:
                continue
            ids.append(tid)
            if t.kind != "live":
                buckets.add(ASSET_BUCKET)
                continue
            lo, hi = max(lo, 0), min(hi, t.frames)
            if hi <= lo:
                continue
            first = int(np.floor((t.start + lo * t.hop_seconds) / BUCKET_SECONDS))
            last = int(np.floor((t.start + (hi - 1) * t.hop_seconds) / BUCKET_SECONDS))
            buckets.update(range(first, last + 1))
        return np.array(sorted(buckets), np.int64), np.array(ids, np.int64)

    def _where(self, part: int, within: FrameWindow | None) -> str | None:
        """SQL conditions of a lookup on ``postings p`` beyond the key; None: nothing to read."""
        if not 0 <= part < self.parts:
            raise ValueError(f"part must be in [0, {self.parts}), not {part}")
        cond = f"p.part = {int(part)}"
        if within is not None:
            buckets, ids = self._buckets(within)
            if not buckets.size:
                return None
            # Constants, not parameters: the planner prunes partitions at plan time.
            cond += f" AND p.bucket = ANY({_array(buckets)}::int4[])"
            cond += f" AND p.track = ANY({_array(ids)}::int4[])"
        return cond

    def _fetch(self, sql: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``(key, track, frame)`` of ``sql``, through COPY BINARY into numpy."""
        buf = bytearray()
        with self.conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as cp:
            for chunk in cp:
                buf += chunk
        ext = int.from_bytes(buf[15:19], "big")
        body = memoryview(buf)[19 + ext : len(buf) - 2]
        rows = np.frombuffer(body, _ROW_OUT)
        return (
            rows["key"].astype(np.int64),
            rows["track"].astype(np.int64),
            rows["frame"].astype(np.int64),
        )

    def lookup(self, keys: np.ndarray, within: FrameWindow | None = None, *, part: int = 0) -> Hits:
        """Every posting of key space ``part`` whose key is in ``keys``; see
        :class:`PostingStore`."""
        self.refresh()
        keys = np.asarray(keys, self.key_dtype)
        uniq = np.unique(self._to_db(keys))
        where = self._where(part, within)
        found = []
        if uniq.size and where is not None:
            cols = "p.key, p.track, p.frame"
            if self.lookup_sql == "any":
                sql = f"SELECT {cols} FROM {self._s}.postings p WHERE {where} AND "
                sql += f"p.key = ANY({_array(uniq)}::int8[])"
            else:
                sql = f"SELECT {cols} FROM unnest({_array(uniq)}::int8[]) q(k) JOIN "
                sql += f"{self._s}.postings p ON p.key = q.k WHERE {where}"
            k, t, f = self._fetch(sql)
            order = np.argsort(k, kind="stable")
            k, t, f = k[order], t[order], f[order]
            qpos, pos = equal_ranges(k, self._to_db(keys))
            found.append((qpos, t[pos], f[pos]))
        hk, ht, hf = self._head.part(part)
        qpos, pos = equal_ranges(hk, keys)
        found.append((qpos, ht[pos], hf[pos]))
        return self._hits(found, within)

    def lookup_prefix(
        self,
        prefixes: np.ndarray,
        bits: int,
        within: FrameWindow | None = None,
        *,
        part: int = 0,
    ) -> Hits:
        """Every posting of key space ``part`` whose top ``bits`` key bits equal a prefix,
        with its whole key (``Hits.key``); one range scan of the btree per distinct prefix."""
        self.refresh()
        prefixes = np.asarray(prefixes, np.uint64)
        width = np.uint64(8 * self.key_dtype.itemsize - bits)
        uniq = np.unique(prefixes)
        where = self._where(part, within)
        found = []
        if uniq.size and where is not None:
            first = (uniq << width).astype(self.key_dtype)
            last = (first | self.key_dtype.type((1 << int(width)) - 1)).astype(self.key_dtype)
            sql = (
                f"SELECT p.key, p.track, p.frame FROM unnest({_array(self._to_db(first))}::int8[],"
                f" {_array(self._to_db(last))}::int8[]) r(lo, hi) JOIN {self._s}.postings p ON "
                f"p.key BETWEEN r.lo AND r.hi WHERE {where}"
            )
            k, t, f = self._fetch(sql)
            k = self._from_db(k)
            order = np.argsort(k, kind="stable")
            k, t, f = k[order], t[order], f[order]
            qpos, pos = equal_ranges(k.astype(np.uint64) >> width, prefixes)
            found.append((qpos, t[pos], f[pos], k[pos]))
        hk, ht, hf = self._head.part(part)
        qpos, pos = equal_ranges(hk.astype(np.uint64) >> width, prefixes)
        found.append((qpos, ht[pos], hf[pos], hk[pos]))
        return self._hits(found, within)

    def _hits(self, found: list[tuple], within: FrameWindow | None) -> Hits:
        q = np.concatenate([np.asarray(p[0], np.int64) for p in found])
        t = np.concatenate([np.asarray(p[1], np.int64) for p in found])
        f = np.concatenate([np.asarray(p[2], np.int64) for p in found])
        keep = np.isin(t, self._live_ids)  # removed tracks' postings wait for compaction
        if within is not None:
            keep &= within.contains(t, f)
        key = None
        if all(len(p) == 4 for p in found):
            key = np.concatenate([np.asarray(p[3], self.key_dtype) for p in found])[keep]
        return Hits(q[keep], t[keep], f[keep], key)

    def _as_parts(self, keys: np.ndarray) -> np.ndarray:
        """Keys as shape (parts, n); 1-D keys need ``parts == 1``."""
        keys = np.asarray(keys)
        if keys.ndim == 1 and self.parts == 1:
            keys = keys[None, :]
        if keys.ndim != 2 or keys.shape[0] != self.parts:
            raise ValueError(f"keys must have shape ({self.parts}, n), not {keys.shape}")
        return keys.astype(self.key_dtype)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[object]:
        """One write transaction under the schema's writer lock; bumps the version."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            self.refresh(force=True)
            yield self.conn
            self.conn.execute(f"UPDATE {self._s}.meta SET version = version + 1")
        self.refresh(force=True)

    def _ensure_partitions(self, buckets: np.ndarray) -> None:
        """Create the hour partitions of ``buckets`` (>= 0) that do not exist yet."""
        have = set(self.partitions())
        for b in sorted(set(np.asarray(buckets, np.int64).tolist()) - have - {ASSET_BUCKET}):
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._s}.postings_h{b} PARTITION OF "
                f"{self._s}.postings FOR VALUES FROM ({b}) TO ({b + 1})"
            )

    def _copy(
        self,
        keys: np.ndarray,
        tracks: np.ndarray,
        frames: np.ndarray,
        buckets: np.ndarray,
        copy_format: str = "binary",
    ) -> None:
        """COPY postings (keys of shape (parts, n); one row per part and posting).

        ``"binary"``: COPY BINARY rows built as one numpy structured array per batch;
        ``"rows"``: psycopg's ``write_row`` per posting (binary too), the reference
        ``bench.posting_store`` measures against.
        """
        if frames.size and (frames.min() < 0 or frames.max() >= 2**31):
            raise ValueError("frames must lie in [0, 2^31) (int4 column)")
        cols = "(key, track, frame, bucket, part)"
        stmt = f"COPY {self._s}.postings {cols} FROM STDIN (FORMAT BINARY)"
        with self.conn.cursor() as cur, cur.copy(stmt) as cp:
            if copy_format == "rows":
                cp.set_types(["int8", "int4", "int4", "int4", "int2"])
                for part, part_keys in enumerate(keys):
                    db = self._to_db(part_keys).tolist()
                    rows = zip(db, tracks.tolist(), frames.tolist(), buckets.tolist(), strict=True)
                    for k, t, f, b in rows:
                        cp.write_row((k, t, f, b, part))
                return
            cp.write(_COPY_HEADER)
            n = frames.size
            for part, part_keys in enumerate(keys):
                db = self._to_db(part_keys)
                for lo in range(0, n, COPY_BATCH):
                    hi = min(n, lo + COPY_BATCH)
                    rows = np.empty(hi - lo, _ROW_IN)
                    rows["n"], rows["part"] = 5, part
                    rows["l0"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 8, 4, 4, 4, 2
                    rows["key"] = db[lo:hi]
                    rows["track"] = tracks[lo:hi]
                    rows["frame"] = frames[lo:hi]
                    rows["bucket"] = buckets[lo:hi]
                    cp.write(rows.tobytes())
            cp.write(_COPY_TRAILER)

    def _record_spans(self, tracks: np.ndarray, frames: np.ndarray, buckets: np.ndarray) -> None:
        """Upsert what each (bucket, track) now holds: first and end frame, postings."""
        if not frames.size:
            return
        order = np.lexsort((tracks, buckets))
        b, t, f = buckets[order], tracks[order], frames[order]
        new = np.ones(b.size, bool)
        new[1:] = (b[1:] != b[:-1]) | (t[1:] != t[:-1])
        starts = np.flatnonzero(new)
        first = np.minimum.reduceat(f, starts)
        stop = np.maximum.reduceat(f, starts) + 1
        count = np.diff(np.append(starts, b.size))
        rows = zip(
            b[starts].tolist(), t[starts].tolist(), first.tolist(), stop.tolist(),
            count.tolist(), strict=True,
        )  # fmt: skip
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self._s}.spans AS s (bucket, track, first, stop, postings) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (bucket, track) DO UPDATE SET "
                "first = least(s.first, excluded.first), stop = greatest(s.stop, excluded.stop),"
                " postings = s.postings + excluded.postings",
                list(rows),
            )

    def add_track(
        self,
        channel_id: str,
        source: str,
        keys: np.ndarray,
        frames: np.ndarray,
        *,
        hop_seconds: float,
        kind: str = "asset",
        start: float = 0.0,
        length_frames: int | None = None,
        stamp: str = "",
        job: str | None = None,
        copy_format: str = "binary",
    ) -> Track:
        """Store a whole track in one transaction, replacing the same channel+source track
        (with ``job``: staged until :meth:`publish`). ``keys``: shape (n,) or (parts, n).

        Asset postings go to the asset partition; a live track's to the hours they aired.
        """
        if kind not in ("asset", "live"):
            raise ValueError(f"kind must be 'asset' or 'live', not {kind!r}")
        keys = self._as_parts(keys)
        frames = np.asarray(frames, np.int64)
        n_frames = int(frames.max()) + 1 if frames.size else 0
        length = max(n_frames, int(length_frames or 0))
        with self._transaction() as conn:
            tid = conn.execute(
                f"INSERT INTO {self._s}.tracks (channel_id, source, kind, start, frames, "
                "hop_seconds, stamp, job) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (channel_id, source, kind, float(start), length, hop_seconds, stamp, job),
            ).fetchone()[0]
            if frames.size:
                tracks = np.full(frames.size, tid, np.int64)
                buckets = self._bucket_of(kind, float(start), hop_seconds, frames)
                self._ensure_partitions(buckets)
                self._copy(keys, tracks, frames, buckets, copy_format)
                self._record_spans(tracks, frames, buckets)
            if job is None:
                conn.execute(
                    f"DELETE FROM {self._s}.tracks WHERE channel_id = %s AND source = %s AND "
                    "job IS NULL AND id <> %s",
                    (channel_id, source, tid),
                )
        return Track(tid, channel_id, source, kind, float(start), length, hop_seconds, stamp)

    @staticmethod
    def _bucket_of(kind: str, start: float, hop: float, frames: np.ndarray) -> np.ndarray:
        if kind != "live":
            return np.full(frames.size, ASSET_BUCKET, np.int64)
        return np.floor((start + frames * hop) / BUCKET_SECONDS).astype(np.int64)

    def remove_tracks(self, track_ids: list[int]) -> None:
        """Hide tracks from queries; asset postings go at :meth:`compact`, live ones with
        their hours."""
        ids = [int(t) for t in track_ids]
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM {self._s}.tracks WHERE id = ANY(%s)", (ids,))

    def remove_channel(self, channel_id: str) -> int:
        """Hide every track of a channel; returns how many."""
        ids = [t.id for t in self.tracks().values() if t.channel_id == channel_id]
        self.remove_tracks(ids)
        return len(ids)

    def publish(self, job: str) -> list[Track]:
        """Make every track of ``job`` visible, replacing the tracks of the same channel and
        source, in one transaction; returns the tracks published."""
        with self._transaction() as conn:
            conn.execute(
                f"DELETE FROM {self._s}.tracks o USING {self._s}.tracks n WHERE n.job = %s AND "
                "o.job IS NULL AND o.channel_id = n.channel_id AND o.source = n.source",
                (job,),
            )
            ids = conn.execute(
                f"UPDATE {self._s}.tracks SET job = NULL WHERE job = %s RETURNING id", (job,)
            ).fetchall()
        return [self._tracks[i] for (i,) in ids]

    def discard(self, job: str) -> None:
        """Forget ``job``'s staged tracks (their postings go at the next compaction)."""
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM {self._s}.tracks WHERE job = %s", (job,))

    def compact(self) -> int:
        """Delete asset postings no track owns any more (removed or replaced tracks) and
        their spans; returns the postings deleted (all key spaces)."""
        with self._transaction() as conn:
            gone = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT track FROM {self._s}.spans s WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {self._s}.tracks t WHERE t.id = s.track)"
                ).fetchall()
            ]
            if not gone:
                return 0
            n = conn.execute(
                f"DELETE FROM {self._s}.postings_assets WHERE track = ANY(%s)", (gone,)
            ).rowcount
            conn.execute(
                f"DELETE FROM {self._s}.spans WHERE bucket = %s AND track = ANY(%s)",
                (ASSET_BUCKET, gone),
            )
        return int(n)

    # -- live tracks -----------------------------------------------------------------------
    def live_track(
        self, channel_id: str, source: str, *, start: float, hop_seconds: float
    ) -> Track:
        """The live track of ``source`` (a feed), created empty at UTC ``start`` if missing
        (one time axis for as long as the feed exists, as in the embedded store)."""
        for track in self.tracks().values():
            if track.channel_id == channel_id and track.source == source and track.kind == "live":
                return track
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT id FROM {self._s}.tracks WHERE channel_id = %s AND source = %s AND "
                "kind = 'live' AND job IS NULL",
                (channel_id, source),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    f"INSERT INTO {self._s}.tracks (channel_id, source, kind, start, frames, "
                    "hop_seconds) VALUES (%s, %s, 'live', %s, 0, %s) RETURNING id",
                    (channel_id, source, float(start), hop_seconds),
                ).fetchone()
        return self._tracks[row[0]]

    def append(self, track_id: int, keys: np.ndarray, frames: np.ndarray) -> None:
        """Add postings of an existing track to the in-memory head (live ingestion)."""
        if track_id not in self._tracks:
            self.refresh(force=True)
            if track_id not in self._tracks:
                raise KeyError(f"no track {track_id}")
        self._head.add(track_id, self._as_parts(keys), frames)

    @property
    def head_size(self) -> int:
        """Postings waiting in the head for the next flush."""
        return self._head.size

    def flush(
        self,
        covered: dict[int, list[tuple[float, float]]] | None = None,
        *,
        copy_format: str = "binary",
    ) -> list[str]:
        """COPY the head into its hour partitions, extend its tracks' lengths and record
        the UTC intervals ``covered`` per track, in one transaction (after a crash the index
        never claims coverage it lost). Returns the partitions written."""
        if not self._head and not covered:
            return []
        keys, tracks, frames = self._head.postings()
        written: list[str] = []
        with self._transaction() as conn:
            # A track removed since its postings were appended: nothing would show them.
            known = np.isin(tracks, np.fromiter(self._axes, np.int64, len(self._axes)))
            if not known.all():
                keys, tracks, frames = keys[:, known], tracks[known], frames[known]
            if tracks.size:
                uniq, inv = np.unique(tracks, return_inverse=True)
                starts = np.array([self._axes[t][0] for t in uniq.tolist()])[inv]
                hops = np.array([self._axes[t][1] for t in uniq.tolist()])[inv]
                buckets = np.floor((starts + frames * hops) / BUCKET_SECONDS).astype(np.int64)
                self._ensure_partitions(buckets)
                self._copy(keys, tracks, frames, buckets, copy_format)
                self._record_spans(tracks, frames, buckets)
                written = [f"postings_h{b}" for b in np.unique(buckets).tolist()]
                uniq = np.unique(tracks)
                ends = np.zeros(uniq.size, np.int64)
                np.maximum.at(ends, np.searchsorted(uniq, tracks), frames + 1)
                with conn.cursor() as cur:
                    cur.executemany(
                        f"UPDATE {self._s}.tracks SET frames = greatest(frames, %s) WHERE id = %s",
                        list(zip(ends.tolist(), uniq.tolist(), strict=True)),
                    )
            if covered:
                rows = conn.execute(
                    f"SELECT id, coverage FROM {self._s}.tracks WHERE id = ANY(%s)",
                    ([int(t) for t in covered],),
                ).fetchall()
                updates = [
                    (json.dumps(merge_intervals([*map(tuple, old), *covered[tid]])), tid)
                    for tid, old in rows
                ]
                with conn.cursor() as cur:
                    cur.executemany(
                        f"UPDATE {self._s}.tracks SET coverage = %s WHERE id = %s", updates
                    )
        self._head.clear()
        return written

    def retain(self, cutoff_utc: dict[int, float]) -> int:
        """Drop the hour partitions whose postings are all older than their live track's
        cutoff (UTC epoch seconds) or belong to removed tracks, and trim coverage to what
        is left: ``DROP TABLE``, nothing rewritten. Returns how many partitions went.

        A partition holding a track without a cutoff (an asset, or a live track the caller
        did not name) is kept, as the embedded store keeps such segments.
        """
        self.refresh(force=True)
        if not self._droppable(self._spans(), cutoff_utc):
            return 0  # retain runs every minute: no transaction when nothing expired
        with self._transaction() as conn:
            gone = self._droppable(self._spans(), cutoff_utc)
            for b in gone:
                conn.execute(f"DROP TABLE IF EXISTS {self._s}.postings_h{b}")
            conn.execute(f"DELETE FROM {self._s}.spans WHERE bucket = ANY(%s)", (gone,))
            left = self._spans()
            updates = []
            for tid, cutoff in cutoff_utc.items():
                t = self._tracks.get(int(tid))
                if t is None or t.kind != "live":
                    continue
                since = float(cutoff)
                firsts = left[1][left[0] == t.id] if left[0].size else left[0]
                if firsts.size:
                    since = min(since, t.start + int(firsts.min()) * t.hop_seconds)
                cov = [(max(a, since), b) for a, b in self._coverage.get(t.id, []) if b > since]
                updates.append((json.dumps(cov), t.id))
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {self._s}.tracks SET coverage = %s WHERE id = %s", updates)
        return len(gone)

    def _spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Live spans ``(track, first, stop, bucket)`` (one row per hour and track)."""
        rows = self.conn.execute(
            f"SELECT track, first, stop, bucket FROM {self._s}.spans WHERE bucket >= 0"
        ).fetchall()
        arr = np.array(rows, np.int64).reshape(-1, 4)
        return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]

    def _droppable(self, spans: tuple, cutoff_utc: dict[int, float]) -> list[int]:
        """Hour buckets every span of which is of a removed track or ends before its live
        track's cutoff frame."""
        track, _, stop, bucket = spans
        existing = set(self._tracks) | {t.id for j in self._staged.values() for t in j.values()}
        cut = {}
        for tid, cutoff in cutoff_utc.items():
            t = self._tracks.get(int(tid))
            if t is not None and t.kind == "live":
                cut[t.id] = int(np.floor((cutoff - t.start) / t.hop_seconds))
        alive = set()
        rows = zip(track.tolist(), stop.tolist(), bucket.tolist(), strict=True)
        for tid, end, b in rows:
            if tid in existing and not (tid in cut and end <= cut[tid]):
                alive.add(b)
        return sorted(set(bucket.tolist()) - alive)

    def merge_live(self, now_utc: float) -> int:
        """Nothing to merge: live postings land in their hour partition at every flush (the
        embedded store merges its per-flush segments into hours). Returns 0."""
        return 0
