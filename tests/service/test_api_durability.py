"""A scan survives ``kill -9`` of the service mid-capture: on restart it is taken over and
finishes once, with one match — never lost, never recorded twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from service.db import Database
from service.keys import create_key
from service.models import MatchRow, ScanRow
from service.settings import Settings
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data, port):
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
        "VIGIE_PORT": str(port),
        "VIGIE_CONFIRM_AFTER_SECONDS": "3600",  # the second sample stays scheduled
        "VIGIE_SCAN_SECONDS": "8",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("vigie serve did not start: " + proc.stderr.read().decode()[-2000:])


@pytest.mark.slow
def test_kill_9_mid_scan_then_restart_finishes_it_once(vigie, tmp_path):
    data = tmp_path / "data"
    recording = make_source(tmp_path / "tv1.ts", 40.0, seed=77)
    vigie(data, "channels", "add", "tv1", "--name", "TV One")
    vigie(data, "reindex", "tv1", str(recording))
    media = segment(recording, tmp_path / "hls", 2.0)
    db = Database(Settings(data_dir=data).catalog_url)
    _, token = create_key(db, "bot", ["scans:write"])
    headers = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with LoopbackServer() as server:
        live = LiveHls(server, media, window=2)  # the capture waits for new segments
        proc = _serve(data, port)
        try:
            scan = httpx.post(
                f"{base}/v1/scans", headers=headers, json={"url": live.playlist_url}, timeout=10
            ).json()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = httpx.get(f"{base}/v1/scans/{scan['id']}", headers=headers).json()
                if status["status"] == "sampling":
                    break
                time.sleep(0.1)
            assert status["status"] == "sampling"
            time.sleep(1.0)  # mid-capture
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        with db.session() as s:
            assert s.get(ScanRow, scan["id"]).status == "sampling"  # left in flight
        proc = _serve(data, port)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                status = httpx.get(f"{base}/v1/scans/{scan['id']}", headers=headers).json()
                if status["status"] in ("done", "failed"):
                    break
                time.sleep(0.25)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    assert status["status"] == "done" and status["attempts"] == 2, status
    assert status["verdict"] == "suspected" and status["channel_id"] == "tv1"
    with db.session() as s:
        assert s.query(MatchRow).filter(MatchRow.scan_id == scan["id"]).count() == 1
        (follow_up,) = s.query(ScanRow).filter(ScanRow.id != scan["id"]).all()
        assert follow_up.confirms == scan["id"] and follow_up.status == "queued"
