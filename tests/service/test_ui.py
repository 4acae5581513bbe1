"""The analyst UI through TestClient: login and logout, sessions that end when the key is
revoked, CSRF, scopes (bots cannot log in, reviews need ``matches:review``, credentials
redacted for non-admin keys), the incidents queue (order, filters, keyset paging), a
review that lands in the audit log, the frame images (and path traversal refused), the
alignment plot, the channels and scans pages, and the render time of the incidents pages
with 10,000 incidents in the database."""

from __future__ import annotations

import io
import json
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import insert, select, update

from reference_index.catalog_records import FeedStatus
from service.app import create_app
from service.keys import create_key, revoke
from service.models import AuditRow, IncidentRow, JobRow, MatchRow, ScanRow
from service.scans import new_scan
from service.settings import Settings
from service.ui.channels import MIN_GAP_SECONDS, _gaps
from service.ui.plot import alignment_svg, nice_ticks
from service.ui.sessions import UiSessionRow

SECRET_URL = "http://pirate.example/live/alice/s3cret/101.ts"
NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


@pytest.fixture
def ui(tmp_path, backend):
    """The app with no workers on each back end (SQLite, PostgreSQL: see backends.py)."""
    settings = Settings(data_dir=tmp_path / "data", rate_per_minute=10**6, **backend.overrides())
    app = create_app(settings, start_workers=False)
    rt = app.state.runtime
    rt.catalog.add_channel("tv1", name="TV One", owner="TV One SA")
    tokens = {}
    for name, scopes in {
        "analyst": ["matches:read", "matches:review"],
        "reader": ["matches:read"],
        "lead": ["matches:read", "scans:write"],
        "bot": ["scans:write"],
        "admin": ["admin"],
    }.items():
        tokens[name] = create_key(rt.db, name, scopes)
    with TestClient(app) as client:
        yield client, rt, tokens


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(client, token, next_="/ui/incidents"):
    client.cookies.clear()  # a logged-in browser is sent on from the login page
    form = client.get("/ui/login", params={"next": next_})
    assert form.status_code == 200, form.text
    return client.post(
        "/ui/login",
        data={"api_key": token, "csrf": _csrf(form.text), "next": next_},
        follow_redirects=False,
    )


def seed_match(rt, *, host="pirate.example", url=SECRET_URL, when=NOW, verdict="confirmed"):
    """A finished scan of ``url`` that matched tv1 (live, 31.5 s behind), its incident and
    match: the rows the scan job writes (the real job runs in test_ui_browser.py)."""
    evidence = {
        "requested_url": url.replace("alice/s3cret", "***/***"),
        "final_url": "http://cdn.example/hls/101.m3u8?token=***",
        "started_utc": when.isoformat(),
        "finished_utc": (when + timedelta(seconds=9)).isoformat(),
        "elapsed_seconds": 9.0,
        "egress_note": "test egress",
        "user_agent": "VLC/3.0",
        "hops": [
            {
                "url": url.replace("alice/s3cret", "***/***"),
                "method": "GET",
                "started_utc": when.isoformat(),
                "resolved": ["203.0.113.7"],
                "address": "203.0.113.7",
                "status": 302,
                "redirect_to": "http://cdn.example/hls/101.m3u8?token=***",
                "response_headers": [["Location", "http://cdn.example/hls/101.m3u8?token=***"]],
                "request_headers": [["User-Agent", "VLC/3.0"]],
            },
            {
                "url": "http://cdn.example/hls/101.m3u8?token=***",
                "method": "GET",
                "started_utc": when.isoformat(),
                "resolved": ["198.51.100.9"],
                "address": "198.51.100.9",
                "status": 200,
                "response_headers": [["Server", "nginx/1.25"]],
                "request_headers": [],
                "bytes": 412,
                "sha256": "ab" * 32,
            },
        ],
        "playlists": [],
        "ranges": [
            {
                "url": "http://cdn.example/hls/seg-7.ts",
                "role": "segment",
                "offset": 0,
                "length": 188000,
                "sha256": "cd" * 32,
                "fed_utc": when.isoformat(),
                "media_sequence": 7,
                "duration_seconds": 2.0,
            }
        ],
        "events": [],
    }
    with rt.db.session() as s:
        scan = new_scan(
            url,
            seconds=8.0,
            modalities=["audio", "video"],
            callback_url=None,
            labels={},
            key_id=None,
        )
        scan.status, scan.verdict, scan.channel_id = "done", verdict, "tv1"
        scan.confidence, scan.delay_seconds, scan.evidence = 0.9999, 31.5, evidence
        scan.finished_at = when
        s.add(scan)
        s.flush()
        incident = IncidentRow(
            host=host,
            channel_id="tv1",
            simulcast_group="tv1",
            owner="TV One SA",
            verdict=verdict,
            confidence=0.9999,
            first_seen=when,
            last_seen=when,
            matches=1,
            review_state="unreviewed",
        )
        s.add(incident)
        s.flush()
        match = MatchRow(
            scan_id=scan.id,
            incident_id=incident.id,
            channel_id="tv1",
            simulcast_group="tv1",
            owner="TV One SA",
            host=host,
            verdict=verdict,
            confidence=0.9999,
            reference="live",
            offset_seconds=1.7647e9,
            delay_seconds=31.5,
            audio_score=41.0,
            video_score=12.0,
            data={
                "url": url,
                "speed": 1.0,
                "audio": {"votes": 180, "score": 41.0, "confidence": 0.9999, "offset_seconds": 1.0},
                "video": {
                    "frames_matched": 7,
                    "score": 12.0,
                    "confidence": 0.999,
                    "offset_seconds": 1.0,
                },
            },
            review_state="unreviewed",
            created_at=when,
        )
        s.add(match)
        s.flush()
        incident.last_match_id = match.id
        return scan.id, incident.id, match.id


def _jpeg(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(out, "JPEG")
    return out.getvalue()


def lay_out_artefacts(data_dir: Path, scan_id: int) -> dict[str, bytes]:
    """The folder service.evidence writes for a scan (layout of the shared contract):
    suspect frames at 1 s and 3 s, reference frames at those query times, an alignment
    of live (UTC epoch) reference times."""
    root = data_dir / "evidence" / "scans" / str(scan_id)
    start = NOW.timestamp() - 31.5
    files = {
        "sample/frames/q_1000.jpg": _jpeg((200, 30, 30)),
        "sample/frames/q_3000.jpg": _jpeg((30, 200, 30)),
        "reference/tv1/r_1000.jpg": _jpeg((200, 40, 40)),
        "reference/tv1/r_3000.jpg": _jpeg((40, 200, 40)),
    }
    q = [0.1 * i for i in range(80)]
    alignment = {
        "tv1": {
            "audio": {"query_seconds": q, "reference_seconds": [start + t for t in q]},
            "video": {"query_seconds": [1.0, 3.0], "reference_seconds": [start + 1, start + 3]},
        }
    }
    files["alignment.json"] = json.dumps(alignment).encode()
    files["match.json"] = json.dumps({"verdict": "confirmed", "matches": []}).encode()
    files["capture/evidence.json"] = json.dumps({"hops": [], "sealed_sha256": "0" * 64}).encode()
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return files


# --- login, sessions, CSRF, scopes --------------------------------------------------------


def test_login_sets_a_strict_httponly_session_and_logout_ends_it(ui):
    client, rt, tokens = ui
    first = client.get("/ui/incidents?verdict=confirmed", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=%2Fui%2Fincidents%3Fverdict%3Dconfirmed"
    done = login(client, tokens["analyst"][1])
    assert done.status_code == 303 and done.headers["location"] == "/ui/incidents"
    cookie = done.headers["set-cookie"]
    assert "vigie_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("SameSite=Strict", "SameSite=strict")
    assert "Path=/ui" in cookie and "Secure" not in cookie  # plain http here
    page = client.get("/ui/incidents")
    assert page.status_code == 200 and "Incidents" in page.text and "analyst" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # none allowed
    assert page.headers["cache-control"] == "no-store"
    with rt.db.session() as s:
        (stored,) = s.scalars(select(UiSessionRow)).all()
    token = client.cookies.get("vigie_session")
    assert stored.id != token and len(stored.id) == 64  # only a hash is stored
    # logout needs the CSRF token; with it, the server forgets the session
    assert client.post("/ui/logout", follow_redirects=False).status_code == 403
    out = client.post("/ui/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    with rt.db.session() as s:
        assert s.scalars(select(UiSessionRow)).all() == []
    client.cookies.set("vigie_session", token, path="/ui")  # a copy of the old cookie
    assert client.get("/ui/incidents", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_over_https(ui):
    client, _, tokens = ui
    https = TestClient(client.app, base_url="https://testserver")
    done = login(https, tokens["reader"][1])
    assert done.status_code == 303 and "Secure" in done.headers["set-cookie"]


def test_bad_keys_and_bot_keys_cannot_log_in(ui):
    client, _, tokens = ui
    wrong = login(client, "vk_nope_nope")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    bot = login(client, tokens["bot"][1])
    assert bot.status_code == 403 and "lacks the &#39;matches:read&#39; scope" in bot.text
    assert "vigie_session" not in client.cookies
    # the login form itself is CSRF-protected (double-submit cookie)
    forged = client.post(
        "/ui/login",
        data={"api_key": tokens["analyst"][1], "csrf": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 403 and "vigie_session" not in client.cookies
    # no open redirect after login
    away = login(client, tokens["analyst"][1], next_="https://evil.example/")
    assert away.headers["location"] == "/ui/incidents"


def test_a_revoked_key_or_an_expired_session_stops_at_once(ui):
    client, rt, tokens = ui
    key, token = tokens["reader"]
    login(client, token)
    assert client.get("/ui/incidents").status_code == 200
    revoke(rt.db, key.id)
    gone = client.get("/ui/incidents", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")
    login(client, tokens["analyst"][1])
    assert client.get("/ui/channels").status_code == 200
    with rt.db.session() as s:
        s.execute(update(UiSessionRow).values(expires_at=datetime.now(UTC) - timedelta(1)))
    assert client.get("/ui/channels", follow_redirects=False).status_code == 303


def test_review_needs_the_csrf_token_the_origin_and_the_review_scope(ui):
    client, rt, tokens = ui
    _, incident_id, match_id = seed_match(rt)
    login(client, tokens["reader"][1])
    page = client.get(f"/ui/incidents/{incident_id}")
    assert page.status_code == 200
    assert "Confirm pirate" not in page.text and "lacks the <code>matches:review" in page.text
    csrf = _csrf(page.text)
    refused = client.post(
        f"/ui/matches/{match_id}/review", data={"csrf": csrf, "decision": "confirm"}
    )
    assert refused.status_code == 403 and "matches:review" in refused.text

    login(client, tokens["analyst"][1])
    page = client.get(f"/ui/incidents/{incident_id}")
    assert "Confirm pirate" in page.text
    csrf = _csrf(page.text)
    url = f"/ui/matches/{match_id}/review"
    assert client.post(url, data={"decision": "confirm"}).status_code == 403
    assert client.post(url, data={"decision": "confirm", "csrf": "x" * 43}).status_code == 403
    cross = client.post(
        url, data={"decision": "confirm", "csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "another site" in cross.text
    bad = client.post(url, data={"decision": "maybe", "csrf": csrf})
    assert bad.status_code == 422 and "decision" in bad.text
    missing = client.post("/ui/matches/999999/review", data={"decision": "confirm", "csrf": csrf})
    assert missing.status_code == 404 and "no match 999999" in missing.text
    with rt.db.session() as s:
        assert s.scalars(select(AuditRow)).all() == []  # nothing refused was written


def test_a_review_from_the_page_lands_in_the_audit_log(ui):
    client, rt, tokens = ui
    _, incident_id, match_id = seed_match(rt)
    login(client, tokens["analyst"][1])
    page = client.get(f"/ui/incidents/{incident_id}")
    done = client.post(
        f"/ui/matches/{match_id}/review",
        data={
            "csrf": _csrf(page.text),
            "decision": "confirm",
            "note": "channel logo, live football",
            "back": f"/ui/incidents/{incident_id}",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/incidents/{incident_id}#review"
    with rt.db.session() as s:
        (entry,) = s.scalars(select(AuditRow)).all()
        assert entry.action == "review.confirm" and entry.target == f"match:{match_id}"
        assert entry.note == "channel logo, live football"
        assert entry.actor == tokens["analyst"][0].id
        assert s.get(MatchRow, match_id).review_state == "confirmed"
        assert s.get(IncidentRow, incident_id).review_state == "confirmed"
    after = client.get(f"/ui/incidents/{incident_id}")
    assert "channel logo, live football" in after.text
    audit = client.get("/ui/audit")
    assert audit.status_code == 200
    row = re.search(r'<tr data-audit="\d+">(.*?)</tr>', audit.text, re.S).group(1)
    assert "review.confirm" in row and f"match:{match_id}" in row
    assert "unreviewed → confirmed" in row and "analyst" in row
    # the same entry the API shows
    api = client.get(
        "/v1/audit", headers={"Authorization": f"Bearer {tokens['analyst'][1]}"}
    ).json()
    assert api[0]["note"] == "channel logo, live football"


def test_credentials_in_urls_are_redacted_unless_admin(ui):
    client, rt, tokens = ui
    scan_id, incident_id, match_id = seed_match(rt)
    login(client, tokens["reader"][1])
    for path in (
        f"/ui/incidents/{incident_id}",
        f"/ui/matches/{match_id}",
        "/ui/scans",
        f"/ui/scans/{scan_id}",
    ):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert "s3cret" not in page.text, path
    assert "/live/***/***/101.ts" in client.get(f"/ui/matches/{match_id}").text
    login(client, tokens["admin"][1])
    assert "alice/s3cret" in client.get(f"/ui/matches/{match_id}").text


def test_the_match_page_shows_scores_delay_and_the_evidence_record(ui):
    client, rt, tokens = ui
    _, _, match_id = seed_match(rt)
    login(client, tokens["reader"][1])
    page = client.get(f"/ui/matches/{match_id}").text
    assert re.search(r'id="delay">31\.5 s<', page)
    assert "score 41.00 · 180 hashes agree" in page and "7 frames agree" in page
    chain = re.search(r'<ol class="chain" id="chain">(.*?)</ol>', page, re.S).group(1)
    assert chain.count("<li>") == 2 and "302" in chain and "cdn.example" in chain
    assert "203.0.113.7, 198.51.100.9" in page  # every address contacted
    assert "nginx/1.25" in page and "cd" * 32 in page  # headers, segment hash
    link = re.search(r'id="evidence-bundle" href="([^"]+)"', page).group(1)
    missing = client.get(link)  # this seeded match has no stored artefacts: said so
    assert missing.status_code == 409 and "artefacts" in missing.text


# --- the incidents queue ------------------------------------------------------------------


def _incident_rows(n, *, start=NOW):
    rows = []
    for i in range(n):
        verdict = ("confirmed", "suspected", "authorized")[i % 3]
        review = "unreviewed" if i % 4 else ("confirmed" if i % 8 else "dismissed")
        when = start - timedelta(minutes=i)
        rows.append(
            dict(
                host=f"h{i}.pirate.example",
                channel_id=f"ch{i % 7}",
                simulcast_group="g",
                owner=f"Owner {i % 5}",
                verdict=verdict,
                confidence=0.99 + (i % 10) / 1000,
                first_seen=when - timedelta(hours=1),
                last_seen=when,
                matches=1 + i % 4,
                review_state=review,
            )
        )
    return rows


def _ids(html):
    return [int(x) for x in re.findall(r'<tr class="[^"]*" data-incident="(\d+)">', html)]


def test_incidents_pages_put_new_confirmed_first_and_page_through_everything(ui):
    client, rt, tokens = ui
    rows = _incident_rows(130)
    with rt.db.session() as s:
        s.execute(insert(IncidentRow), rows)
        everything = s.scalars(select(IncidentRow)).all()
    expected = sorted(
        everything,
        key=lambda r: (
            r.verdict == "confirmed" and r.review_state == "unreviewed",
            r.last_seen,
            r.id,
        ),
        reverse=True,
    )
    login(client, tokens["reader"][1])
    seen, url, pages = [], "/ui/incidents?limit=25", 0
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += _ids(page.text)
        pages += 1
        nxt = re.search(r'id="next-page" href="([^"]+)"', page.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert pages == 6 and seen == [r.id for r in expected]
    first = client.get("/ui/incidents").text
    assert "130 incidents" in first and first.count('class="badge">new') > 0

    filtered = client.get(
        "/ui/incidents", params={"verdict": "suspected", "channel_id": "ch1", "limit": "200"}
    ).text
    want = {r.id for r in everything if r.verdict == "suspected" and r.channel_id == "ch1"}
    assert set(_ids(filtered)) == want and f"{len(want)} incidents match" in filtered
    host = client.get("/ui/incidents", params={"host": "H5.Pirate.Example"}).text
    assert len(_ids(host)) == 1
    reviewed = client.get("/ui/incidents", params={"review_state": "dismissed"}).text
    assert set(_ids(reviewed)) == {r.id for r in everything if r.review_state == "dismissed"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"verdict": "pirate"}, "verdict: must be one of"),
        ({"review_state": "later"}, "review_state: must be one of"),
        ({"limit": "7"}, "limit: must be one of"),
        ({"cursor": "garbage"}, "cursor: not one this page gave out"),
        ({"channel_id": "x" * 65}, "channel_id: at most 64"),
    ],
)
def test_bad_filters_are_422_naming_them(ui, params, named):
    client, _, tokens = ui
    login(client, tokens["reader"][1])
    got = client.get("/ui/incidents", params=params)
    assert got.status_code == 422 and named in got.text


def test_unknown_pages_are_404_and_the_ui_is_not_in_the_api_schema(ui):
    client, _, tokens = ui
    login(client, tokens["reader"][1])
    assert client.get("/ui/incidents/424242").status_code == 404
    assert client.get("/ui/matches/424242").status_code == 404
    assert client.get("/ui/scans/424242").status_code == 404
    assert client.get("/ui/incidents/abc").status_code == 422
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/ui")]
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")


# --- frames, plot -------------------------------------------------------------------------


def test_frames_are_served_from_the_artefacts_and_traversal_is_refused(ui, tmp_path):
    client, rt, tokens = ui
    scan_id, incident_id, _ = seed_match(rt)
    files = lay_out_artefacts(rt.settings.data_dir, scan_id)
    (rt.settings.data_dir / "secret.jpg").write_bytes(b"not yours")
    folder = rt.settings.data_dir / "evidence" / "scans" / str(scan_id)
    (folder / "sample/frames/q_5000.jpg").symlink_to(rt.settings.data_dir / "secret.jpg")
    assert (
        client.get(
            f"/ui/scans/{scan_id}/frames/sample/frames/q_1000.jpg", follow_redirects=False
        ).status_code
        == 303
    )  # not logged in
    login(client, tokens["reader"][1])
    page = client.get(f"/ui/incidents/{incident_id}").text
    suspects = re.findall(r'<img class="suspect" src="([^"]+)"', page)
    references = re.findall(r'<img class="reference" src="([^"]+)"', page)
    assert suspects == [
        f"/ui/scans/{scan_id}/frames/sample/frames/q_1000.jpg",
        f"/ui/scans/{scan_id}/frames/sample/frames/q_3000.jpg",
    ]
    assert references == [
        f"/ui/scans/{scan_id}/frames/reference/tv1/r_1000.jpg",
        f"/ui/scans/{scan_id}/frames/reference/tv1/r_3000.jpg",
    ]
    for src in suspects + references:
        got = client.get(src)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == files[src.split("/frames/", 1)[1]]
    svg = re.search(r"<svg .*?</svg>", page, re.S).group(0)
    assert 'data-modality="audio" data-points="80"' in svg
    assert 'data-modality="video" data-points="2"' in svg
    assert "reference time after 2026-12-01 19:59:28Z (s)" in svg

    base = f"/ui/scans/{scan_id}/frames/"
    for bad in (
        "../../secret.jpg",
        "sample/frames/../../../secret.jpg",
        "sample/frames/%2e%2e/%2e%2e/%2e%2e/secret.jpg",
        "reference/tv1/..%2f..%2f..%2fsecret.jpg",
        "sample/frames//etc/passwd.jpg",
        "capture/evidence.json",
        "alignment.json",
        "sample/frames/q_9999.jpg",  # inside the folder, but not an artefact
        "sample/frames/q_5000.jpg",  # a symbolic link out of the folder
    ):
        got = client.get(base + bad)
        # 422: the client folded a plain "..", leaving a path that is no frame route
        assert got.status_code in (404, 422), bad
        assert b"not yours" not in got.content
    assert client.get(f"/ui/scans/{scan_id + 1}/frames/sample/frames/q_1000.jpg").status_code == 404


def test_a_scan_without_artefacts_says_so(ui):
    client, rt, tokens = ui
    _, _, match_id = seed_match(rt)
    login(client, tokens["reader"][1])
    page = client.get(f"/ui/matches/{match_id}").text
    assert 'id="no-frames"' in page and "No alignment was stored" in page


def test_the_alignment_plot_draws_a_line_of_points_in_two_colours():
    q = [float(i) for i in range(10)]
    svg = alignment_svg(
        {
            "audio": {"query_seconds": q, "reference_seconds": [100.0 + t for t in q]},
            "video": {"query_seconds": [2.0, 4.0], "reference_seconds": [102.0, 104.0]},
        },
        live=False,
    )
    assert 'data-points="12"' in svg and "#0072b2" in svg and "#d55e00" in svg
    assert "reference (recording) time (s)" in svg and ">100<" in svg
    audio = re.search(r'class="points audio".*?"/>', svg).group(0)
    dots = re.findall(r"M([\d.]+),([\d.]+)h0", audio)
    xs, ys = [float(x) for x, _ in dots], [float(y) for _, y in dots]
    slopes = {round((ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]), 1) for i in range(len(xs) - 1)}
    assert len(slopes) == 1  # one straight line (downwards on screen: y grows down)
    assert alignment_svg(None, live=True) is None
    empty = {"audio": {"query_seconds": [], "reference_seconds": []}}
    assert alignment_svg(empty, live=True) is None
    assert nice_ticks(0.0, 10.0) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


# --- channels and scans -------------------------------------------------------------------


def test_the_channels_page_shows_feed_health_distributors_and_jobs(ui):
    client, rt, tokens = ui
    feed = rt.catalog.add_feed("tv1", "http://tnt.example/live/USER/PASS/101.ts", label="TNT")
    rt.catalog.add_distributor("tv1", "Box Telecom", host_pattern="*.box.example")
    now = datetime.now(UTC)
    rt.catalog.report_feed_status(
        [
            FeedStatus(
                feed_id=feed.id,
                state="reconnecting",
                ingester="ingest-1:42",
                last_posting_utc=now - timedelta(seconds=20),
                lag_seconds=4.25,
                chunks=30,
                errors=3,
                reconnects=2,
                last_error_reason="timeout",
                last_error_message="read timed out",
                last_error_utc=now,
                updated_utc=now,
            )
        ]
    )
    with rt.db.session() as s:
        s.add(
            JobRow(
                kind="reindex",
                channel_id="tv1",
                status="running",
                params={"sources": ["http://vod.example/get?user=u&password=p"], "jobs": 2},
                progress={"files_total": 8, "files_done": 3, "seconds_done": 5400.0},
                created_at=now,
            )
        )
    login(client, tokens["reader"][1])
    page = client.get("/ui/channels")
    assert page.status_code == 200
    text = page.text
    assert "TV One" in text and "reconnecting" in text and "4.2 s" in text
    assert "timeout: read timed out" in text and "Box Telecom" in text and "*.box.example" in text
    assert "PASS" not in text and "password=p" not in text  # redacted for non-admin
    assert '<progress max="8" value="3">' in text and "3 / 8 files" in text and "1.50 h" in text


def test_gaps_are_holes_between_covered_intervals():
    covered = [(0.0, 100.0), (102.0, 200.0), (260.0, 300.0), (400.0, 500.0)]
    assert MIN_GAP_SECONDS > 2.0
    assert _gaps(covered, 0.0, 1000.0) == [(200.0, 260.0), (300.0, 400.0)]
    assert _gaps(covered, 350.0, 1000.0) == [(350.0, 400.0)]  # clipped to the window
    assert _gaps([], 0.0, 10.0) == []


def test_an_analyst_submits_a_url_and_watches_its_scan(ui):
    client, rt, tokens = ui
    login(client, tokens["reader"][1])
    page = client.get("/ui/scans")
    assert "lacks the <code>scans:write" in page.text
    refused = client.post("/ui/scans", data={"csrf": _csrf(page.text), "url": SECRET_URL})
    assert refused.status_code == 403

    login(client, tokens["lead"][1])
    page = client.get("/ui/scans")
    csrf = _csrf(page.text)
    bad = client.post("/ui/scans", data={"csrf": csrf, "url": "rtmp://x/live"})
    assert bad.status_code == 422 and "url:" in bad.text
    short = client.post("/ui/scans", data={"csrf": csrf, "url": SECRET_URL, "seconds": "0.5"})
    assert short.status_code == 422 and "seconds:" in short.text
    done = client.post(
        "/ui/scans",
        data={"csrf": csrf, "url": SECRET_URL, "seconds": "6"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    scan_id = int(done.headers["location"].rsplit("/", 1)[1])
    with rt.db.session() as s:
        row = s.get(ScanRow, scan_id)
        assert row.url == SECRET_URL and row.seconds == 6.0 and row.status == "queued"
        assert row.key_id == tokens["lead"][0].id
    status = client.get(f"/ui/scans/{scan_id}")
    assert 'http-equiv="refresh"' in status.text and 'id="status">queued<' in status.text
    assert "s3cret" not in status.text
    again = client.post("/ui/scans", data={"csrf": csrf, "url": SECRET_URL}, follow_redirects=False)
    assert again.headers["location"] == f"/ui/scans/{scan_id}"  # de-duplicated, as the API
    listed = client.get("/ui/scans", params={"status": "queued"}).text
    assert f'href="/ui/scans/{scan_id}"' in listed
    assert client.get("/ui/scans", params={"status": "asleep"}).status_code == 422


# --- 10,000 incidents ---------------------------------------------------------------------


def test_pages_with_10000_incidents_render_fast(ui):
    client, rt, tokens = ui
    with rt.db.session() as s:
        s.execute(insert(IncidentRow), _incident_rows(10_000))
    scan_id, incident_id, _ = seed_match(rt, host="timed.pirate.example")
    login(client, tokens["reader"][1])
    deep = "/ui/incidents"
    for _ in range(100):  # a cursor 100 pages (5,000 incidents) in
        nxt = re.search(r'id="next-page" href="([^"]+)"', client.get(deep).text)
        deep = nxt.group(1).replace("&amp;", "&")
    pages = {
        "incidents, first page": "/ui/incidents",
        "incidents, page 101": deep,
        "incidents, filtered": "/ui/incidents?verdict=suspected&review_state=unreviewed",
        "incidents, by host": "/ui/incidents?host=h9999.pirate.example",
        "incident": f"/ui/incidents/{incident_id}",
        "audit log": "/ui/audit",
        "scans": "/ui/scans",
    }
    medians = {}
    for name, path in pages.items():
        times = []
        for _ in range(15):
            started = time.perf_counter()
            got = client.get(path)
            times.append(time.perf_counter() - started)
            assert got.status_code == 200, (name, got.text[:300])
        medians[name] = statistics.median(times)
    first = client.get("/ui/incidents").text
    assert "10,001 incidents" in first and len(_ids(first)) == 50
    assert len(_ids(client.get(deep).text)) == 50
    assert _ids(client.get(pages["incidents, by host"]).text) == [10_000]
    engine = rt.db.engine.dialect.name
    print(f"\nUI render time with 10,001 incidents on {engine} (median of 15, TestClient, ms):")
    for name, seconds in medians.items():
        print(f"  {name:24} {1000 * seconds:7.1f}")
