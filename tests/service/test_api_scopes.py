"""Every route refuses requests without a key (401) and keys without its scope (403).

The routes are walked from the app itself, so a route added later without a scope check,
or with the wrong one, fails here without anyone writing a test for it."""

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.app import create_app
from service.keys import SCOPES, create_key
from service.settings import Settings

OPEN = {"/healthz"}


def _scopes_of(dependant) -> tuple[str, ...] | None:
    for dep in dependant.dependencies:
        found = getattr(dep.call, "scopes", None) or _scopes_of(dep)
        if found:
            return found
    return None


def _api_routes(routes, prefix=""):
    """Every APIRoute with its full path (FastAPI keeps included routers nested)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r
        elif hasattr(r, "original_router"):
            yield from _api_routes(r.original_router.routes, prefix + r.include_context.prefix)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = create_app(
        Settings(data_dir=tmp_path_factory.mktemp("scopes"), rate_per_minute=10**6),
        start_workers=False,
    )
    rt = app.state.runtime
    tokens = {}
    for scope in SCOPES:
        _, tokens[scope] = create_key(rt.db, scope, [scope])
    routes = [
        (method, path, _scopes_of(r.dependant))
        for path, r in _api_routes(app.routes)
        for method in sorted(r.methods)
    ]
    with TestClient(app) as client:
        yield client, tokens, routes


def _path(template: str) -> str:
    return re.sub(r"\{[^}]*(id)\}", "1", re.sub(r"\{channel_id\}", "tv1", template))


def test_every_route_but_healthz_declares_a_scope(served):
    _, _, routes = served
    assert len(routes) > 30
    missing = [(m, p) for m, p, scopes in routes if not scopes and p not in OPEN]
    assert missing == []
    assert {p for _, p, s in routes if not s} <= OPEN | {"/openapi.json", "/docs", "/redoc"}


def test_no_key_is_401(served):
    client, _, routes = served
    for method, path, scopes in routes:
        if not scopes:
            continue
        got = client.request(method, _path(path), json={})
        assert got.status_code == 401, (method, path, got.text)
        assert got.headers["content-type"] == "application/problem+json"
        assert got.headers["www-authenticate"].startswith("Bearer")


def test_a_key_without_the_scope_is_403(served):
    client, tokens, routes = served
    checked = 0
    for method, path, scopes in routes:
        if not scopes:
            continue
        for scope, token in tokens.items():
            if scope in scopes or scope == "admin":
                continue
            got = client.request(
                method, _path(path), json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert got.status_code == 403, (method, path, scope, got.text)
            assert "lacks" in got.json()["detail"]
            checked += 1
    assert checked > 60


def test_admin_passes_every_scope_check(served):
    client, tokens, routes = served
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    for method, path, scopes in routes:
        if scopes:
            got = client.request(method, _path(path), json={}, headers=admin)
            assert got.status_code not in (401, 403), (method, path, got.text)
            assert got.status_code < 500, (method, path, got.text)


def test_scopes_are_as_documented(served):
    _, _, routes = served
    by_route = {(m, p): s for m, p, s in routes}
    assert by_route[("POST", "/v1/scans")] == ("scans:write",)
    assert set(by_route[("GET", "/v1/scans/{scan_id}")]) == {"scans:write", "matches:read"}
    assert by_route[("POST", "/v1/matches/{match_id}/review")] == ("matches:review",)
    assert by_route[("GET", "/v1/matches")] == ("matches:read",)
    assert by_route[("POST", "/v1/channels")] == ("admin",)


def test_a_revoked_key_is_refused(served):
    from service.keys import revoke

    client, _, _ = served
    rt = client.app.state.runtime
    key, token = create_key(rt.db, "temp", ["matches:read"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/incidents", headers=headers).status_code == 200
    assert client.get("/v1/incidents", headers={"X-API-Key": token}).status_code == 200
    revoke(rt.db, key.id)
    assert client.get("/v1/incidents", headers=headers).status_code == 401


def test_rate_limit_is_429_with_retry_after(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, rate_per_minute=3), start_workers=False)
    _, token = create_key(app.state.runtime.db, "bot", ["matches:read"])
    with TestClient(app) as client:
        codes = [
            client.get("/v1/incidents", headers={"Authorization": f"Bearer {token}"})
            for _ in range(5)
        ]
    assert [c.status_code for c in codes] == [200, 200, 200, 429, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
