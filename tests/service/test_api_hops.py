"""The submit and read paths cross to the thread pool once each, not once per dependency.

Why it matters: under load every hop is two thread handoffs that each wait for the
interpreter lock and a core (the scan threads of the same process hold both), measured
at a median 8 ms and up to 130 ms a hop by ``bench.service_load``; ``POST /v1/scans`` took
five hops before. These tests count the hops of real requests, so turning a dependency
back into a plain ``def`` fails them.
"""

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import SQLITE_POOL_SIZE
from service.keys import create_key
from service.settings import Settings


@pytest.fixture
def served(tmp_path, monkeypatch):
    app = create_app(Settings(data_dir=tmp_path, rate_per_minute=10**6), start_workers=False)
    _, token = create_key(app.state.runtime.db, "bot", ["scans:write"])
    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(func, *args, **kwargs):  # noqa: ANN001, ANN202
        inner = getattr(func, "func", func)
        hops.append(getattr(inner, "__name__", repr(inner)))
        return await real(func, *args, **kwargs)

    with TestClient(app) as client:
        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        yield client, {"Authorization": f"Bearer {token}"}, hops, app


def test_a_submission_takes_two_hops_and_a_read_two(served):
    client, headers, hops, _ = served
    got = client.post("/v1/scans", json={"url": "http://example.com/a.m3u8"}, headers=headers)
    assert got.status_code == 202, got.text
    assert hops == ["_authenticate", "submit_scans"]
    hops.clear()
    read = client.get(got.headers["location"], headers=headers)
    assert read.status_code == 200
    assert read.json()["id"] == got.json()["id"] and read.json()["status"] == "queued"
    assert hops == ["_authenticate", "_read_scan"]


def test_the_answers_are_unchanged(served):
    client, headers, _, _ = served
    url = "http://example.com/b.m3u8"
    first = client.post("/v1/scans", json={"url": url}, headers=headers)
    again = client.post("/v1/scans", json={"url": url}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.headers["location"] == first.headers["location"]
    assert again.json()["id"] == first.json()["id"] and first.json()["matches"] == []
    group = client.post("/v1/scans", json={"urls": [url + "?1", url + "?2"]}, headers=headers)
    assert group.status_code == 202
    assert group.headers["location"] == f"/v1/scan-groups/{group.json()['id']}"
    assert [s["entry_name"] for s in group.json()["scans"]] == [None, None]
    assert client.get("/v1/scans/999", headers=headers).status_code == 404
    assert client.post("/v1/scans", json={"url": url}).status_code == 401


def test_sqlite_connections_are_kept_not_reopened(served):
    _, _, _, app = served
    pool = app.state.runtime.db.engine.pool
    assert pool.size() == SQLITE_POOL_SIZE
    opened = []
    from sqlalchemy import event

    event.listen(app.state.runtime.db.engine, "connect", lambda *a: opened.append(1))
    conns = [app.state.runtime.db.engine.connect() for _ in range(12)]  # above the old 5
    for c in conns:
        c.close()
    again = [app.state.runtime.db.engine.connect() for _ in range(12)]
    for c in again:
        c.close()
    assert len(opened) <= 12  # the second round reused the first round's connections
