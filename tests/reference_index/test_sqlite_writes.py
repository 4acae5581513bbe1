"""Writers of one SQLite file queue in Python (no busy-handler sleeps), foreground first."""

import threading
import time

import pytest
from sqlalchemy import create_engine, event, text

from reference_index.sqlite_writes import WriteLock, mark_background, serialize_writes


def test_a_waiting_foreground_thread_goes_before_waiting_background_ones():
    lock = WriteLock()
    order = []
    holding = threading.Event()
    release = threading.Event()

    def background(name, hold=False):
        mark_background()
        assert lock.acquire(5.0)
        order.append(name)
        if hold:
            holding.set()
            release.wait(5.0)
        lock.release()

    def foreground():
        assert lock.acquire(5.0)
        order.append("api")
        lock.release()

    first = threading.Thread(target=background, args=("worker-1", True))
    first.start()
    holding.wait(5.0)
    second = threading.Thread(target=background, args=("worker-2",))
    second.start()
    time.sleep(0.1)  # worker-2 is queued first...
    api = threading.Thread(target=foreground)
    api.start()
    time.sleep(0.1)
    release.set()
    for t in (first, second, api):
        t.join(5.0)
    assert order == ["worker-1", "api", "worker-2"]  # ...but the request goes first


def test_the_lock_is_reentrant_and_times_out_for_others():
    lock = WriteLock()
    assert lock.acquire(1.0) and lock.acquire(1.0)
    lock.release()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(0.2)))
    t.start()
    t.join()
    assert got == [False]  # still held once
    lock.release()
    t = threading.Thread(target=lambda: got.append(lock.acquire(0.2)))
    t.start()
    t.join()
    assert got == [False, True]


@pytest.mark.parametrize("serialized", [True, False])
def test_concurrent_writers_never_meet_a_locked_database(tmp_path, serialized):
    """With SQLite's own waiting switched off (busy_timeout 0), eight threads writing at
    once fail with 'database is locked' unless their writes are queued."""
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=10)

    @event.listens_for(engine, "connect")
    def _pragmas(conn, _record):
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=0")

    if serialized:
        serialize_writes(engine)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    errors = []

    def write(k):
        for i in range(40):
            try:
                with engine.begin() as c:
                    c.execute(text("INSERT INTO t VALUES (:n)"), {"n": k * 100 + i})
                    c.execute(text("UPDATE t SET n = n WHERE n = :n"), {"n": k})
            except Exception as exc:  # noqa: BLE001 - counted, asserted below
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as c:
        rows = c.execute(text("SELECT COUNT(*) FROM t")).scalar()
    if serialized:
        assert errors == [] and rows == 320
    else:
        assert errors and "locked" in str(errors[0])
