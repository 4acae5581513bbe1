"""One writer at a time per SQLite file within a process, queued in Python.

SQLite lets one transaction write at a time; a connection that finds the file locked
waits in its busy handler, which polls with growing sleeps (1, 2, 5, 10, … up to 100 ms).
Under load — an API accepting scans while worker threads record results — every writer
that loses the race sleeps far longer than the transaction ahead of it takes: measured
here, accepting a scan went from 4 ms idle to a 70 ms median and 400 ms p99. Queued on a
lock instead, a writer runs the moment the previous one commits.

Threads marked as background work (:func:`mark_background`: the scan workers) give way:
while a foreground thread (one serving an HTTP request) waits, no background thread takes
the lock, so a request waits for at most the one transaction in progress, never behind a
queue of workers recording results.

The lock is taken when a connection's transaction first writes (the ``sqlite3`` module
opens its transaction there, not at reads) and released when it commits or rolls back,
or when the pool resets the connection. It is re-entrant and per database file, shared
by every engine of the process on that file (the catalog's and the service's). Writers in
other processes (``vigie ingest``, the CLI) still meet SQLite's busy handler.
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["WriteLock", "mark_background", "serialize_writes"]

#: Longest wait for the lock, seconds; then the writer goes on and SQLite's own busy
#: timeout applies (a stuck writer must not hang the others forever).
WAIT_SECONDS = 10.0

_thread = threading.local()


def mark_background() -> None:
    """Let the calling thread's writes give way to other threads' (for worker threads)."""
    _thread.background = True


class WriteLock:
    """A re-entrant lock that foreground threads take before background ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._foreground_waiting = 0

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; ``False`` if that ran out."""
        me = threading.get_ident()
        background = getattr(_thread, "background", False)
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            if not background:
                self._foreground_waiting += 1
            try:
                taken = self._cond.wait_for(
                    lambda: (
                        self._owner is None and (not background or self._foreground_waiting == 0)
                    ),
                    timeout,
                )
            finally:
                if not background:
                    self._foreground_waiting -= 1
            if taken:
                self._owner, self._depth = me, 1
            return taken

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


_locks: dict[str, WriteLock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: str) -> WriteLock:
    with _locks_guard:
        return _locks.setdefault(path, WriteLock())


def serialize_writes(engine: Engine) -> None:
    """Queue ``engine``'s write transactions behind this process's other writers."""
    lock = _lock_for(str(engine.url.database))
    holders: set[int] = set()  # id() of the DBAPI connections holding ``lock``
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        raw = id(conn.connection.dbapi_connection)
        if raw in holders or statement.lstrip()[:6].upper() in ("SELECT", "PRAGMA"):
            return
        if lock.acquire(timeout=WAIT_SECONDS):
            holders.add(raw)

    def _release(connection: object) -> None:
        # SQLAlchemy passes its pool's proxy here, or the DBAPI connection itself
        raw = id(getattr(connection, "dbapi_connection", connection))
        if raw in holders:
            holders.discard(raw)
            lock.release()

    # Released once SQLite has committed (or rolled back, also when the pool resets a
    # returned connection): SQLAlchemy's own "commit" event comes before the commit.
    def do_commit(dbapi_connection: object) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def do_rollback(dbapi_connection: object) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
