"""Scan worker threads run below the API's CPU priority and give way on database writes."""

import os
import sys
import threading

import pytest

from reference_index import sqlite_writes
from service.queue import JobQueue

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def test_worker_threads_are_niced_and_marked_background_the_caller_is_not():
    queue = JobQueue(None)
    seen = []
    done = threading.Event()

    def job():
        tid = threading.get_native_id()
        seen.append((os.getpriority(os.PRIO_PROCESS, tid), sqlite_writes._thread.background))
        done.set()

    queue.declare("probe", job)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    queue.start(2, nice=5)
    try:
        queue.send("probe")
        assert done.wait(10.0)
    finally:
        queue.stop()
    assert seen == [(min(19, base + 5), True)]
    # the calling thread keeps its priority and its foreground place
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert not getattr(sqlite_writes._thread, "background", False)
