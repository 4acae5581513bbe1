"""The analyst UI in a real browser: Debian's Chromium driven by Playwright against
``vigie serve`` on loopback, after a real scan of a pirate live restream.

A channel is indexed from a generated recording; a loopback server restreams it as live
HLS; a bot submits the pirate URL and the scan (and its confirming second sample) runs in
the service. Then the browser logs in with an analyst key, opens the incident, sees both
frame images loaded (``naturalWidth > 0``) and the alignment plot, confirms the match with
a note, and finds the review in the audit log (and signed into the match's sealed
evidence chain, as a review through the API is). Screenshots of each page are saved under
the test's tmp folder (the path is printed) for a person to look at.

Skipped, with the reason, where Playwright or Chromium is missing (CI installs both).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.db import Database
from service.evidence.manifest import SealedMatch
from service.evidence.reviews import chain
from service.keys import create_key
from service.models import AuditRow
from service.settings import Settings
from tests.fingerprinting.capture.hls_media import LiveHls, make_source, segment
from tests.fingerprinting.capture.servers import LoopbackServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip(
        "playwright (Python) is not installed: pip install -e '.[dev]'", allow_module_level=True
    )
if not CHROMIUM.exists():  # pragma: no cover - depends on the machine
    pytest.skip(
        f"Debian's Chromium is missing at {CHROMIUM}: apt-get install -y chromium",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "VIGIE_DATA_DIR": str(data),
        "VIGIE_ALLOW_NETWORKS": "127.0.0.0/8",
        "VIGIE_PORT": str(port),
        "VIGIE_SCAN_SECONDS": "8",
        "VIGIE_CONFIRM_AFTER_SECONDS": "1",
        "VIGIE_WORKER_THREADS": "2",
        "VIGIE_CAPTURE_DEADLINE_SECONDS": "30",
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


def _confirmed_scan(base: str, headers: dict, url: str) -> dict:
    posted = httpx.post(f"{base}/v1/scans", headers=headers, json={"url": url}, timeout=10)
    assert posted.status_code == 202, posted.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        scan = httpx.get(f"{base}/v1/scans/{posted.json()['id']}", headers=headers).json()
        if scan["verdict"] == "confirmed" or (scan["confirmation"] or {}).get("state") not in (
            None,
            "pending",
        ):
            return scan
        time.sleep(0.25)
    raise AssertionError(f"the scan never got a final verdict: {scan}")


def _images(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector,
        "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete, "
        "width: e.naturalWidth}))",
    )


def test_an_analyst_confirms_a_real_incident_in_chromium(vigie, tmp_path):
    data = tmp_path / "data"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    recording = make_source(tmp_path / "tv1.ts", 40.0, seed=77)
    vigie(data, "channels", "add", "tv1", "--name", "TV One", "--owner", "TV One SA")
    vigie(data, "reindex", "tv1", str(recording))
    media = segment(recording, tmp_path / "hls", 2.0)
    db = Database(Settings(data_dir=data).catalog_url)
    _, bot = create_key(db, "bot", ["scans:write"])
    analyst_key, analyst = create_key(db, "analyst ada", ["matches:read", "matches:review"])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with LoopbackServer() as server:
        live = LiveHls(server, media, window=8)
        proc = _serve(data, port)
        try:
            scan = _confirmed_scan(base, {"Authorization": f"Bearer {bot}"}, live.playlist_url)
            assert scan["verdict"] == "confirmed", scan
            incident_id = scan["matches"][0]["incident_id"]
            # export the lead match's evidence bundle first: it is sealed, so the review
            # made in the browser must be signed into its chain
            analyst_h = {"Authorization": f"Bearer {analyst}"}
            incident = httpx.get(f"{base}/v1/incidents/{incident_id}", headers=analyst_h)
            lead = incident.json()["last_match_id"]
            bundle = httpx.get(f"{base}/v1/matches/{lead}/evidence.zip", headers=analyst_h)
            assert bundle.status_code == 200, bundle.text
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    artefacts = _walk(page, base, analyst, incident_id, shots)
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"\nscreenshots of the UI: {shots}")
    with db.session() as s:
        (entry,) = s.query(AuditRow).filter(AuditRow.action == "review.confirm").all()
    assert entry.actor == analyst_key.id and entry.note == "TV One logo, live, 2 s segments"
    assert entry.target == f"match:{lead}"
    signed = chain(SealedMatch.load(Settings(data_dir=data), lead))
    assert [e for _, e, _ in signed if b"TV One logo, live, 2 s segments" in e]
    # the plot and frames come from the scan's artefacts (service/evidence.py): checked
    # last, so the rest of the flow above is verified even where they are missing
    plot, suspects, references = artefacts
    assert plot["plots"] == 1, "no alignment plot on the incident page"
    assert plot["points"] > 10 and plot["series"] >= 1, plot
    assert suspects and all(i["complete"] and i["width"] > 0 for i in suspects), suspects
    assert references and all(i["complete"] and i["width"] > 0 for i in references), references


def _walk(page, base: str, token: str, incident_id: int, shots: Path) -> tuple:
    """Log in, open the incident, confirm, find the review in the audit log; returns what
    the incident page drew from the scan's artefacts: the plot's counts, and the suspect
    and reference images as the browser loaded them."""
    page.goto(f"{base}/ui/incidents")
    assert "/ui/login" in page.url  # not logged in yet
    page.fill("input[name=api_key]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/incidents")
    row = page.locator(f"tr[data-incident='{incident_id}']")
    assert row.count() == 1 and "127.0.0.1" in row.inner_text()
    assert "confirmed" in row.inner_text()
    page.screenshot(path=str(shots / "1-incidents.png"), full_page=True)

    row.locator("a").first.click()
    page.wait_for_url(f"{base}/ui/incidents/{incident_id}")
    page.wait_for_load_state("load")  # every image loaded or failed
    plot = page.locator("svg.alignment")
    seen = {
        "plots": plot.count(),
        "points": int(plot.get_attribute("data-points")) if plot.count() == 1 else 0,
        "series": page.locator("svg.alignment path.points").count(),
    }
    suspects = _images(page, "img.suspect")
    references = _images(page, "img.reference")
    assert "confirmed" in page.locator("#incident").inner_text()
    page.screenshot(path=str(shots / "2-incident.png"), full_page=True)
    # the export button hands the analyst the same signed bundle as the API
    bundle = page.request.get(base + page.locator("#evidence-bundle").get_attribute("href"))
    assert bundle.status == 200 and bundle.headers["content-type"] == "application/zip"
    assert bundle.body()[:2] == b"PK"

    page.fill("textarea[name=note]", "TV One logo, live, 2 s segments")
    page.click("button.confirm")
    page.wait_for_url(f"{base}/ui/incidents/{incident_id}#review")
    assert page.locator("#review-state").inner_text() == "confirmed"
    assert "TV One logo, live, 2 s segments" in page.locator("#reviews").inner_text()
    page.screenshot(path=str(shots / "3-incident-confirmed.png"), full_page=True)

    page.click("nav >> text=Audit log")
    page.wait_for_url(f"{base}/ui/audit")
    entry = page.locator("#audit tbody tr").first
    text = entry.inner_text()
    assert "review.confirm" in text and "TV One logo, live, 2 s segments" in text
    assert "analyst ada" in text and "unreviewed → confirmed" in text
    page.screenshot(path=str(shots / "4-audit.png"), full_page=True)
    return seen, suspects, references
