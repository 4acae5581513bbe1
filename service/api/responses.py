"""The failures each route documents (``responses=``), as the problem objects they are.

Every error is RFC 9457 ``application/problem+json`` (:mod:`service.problems`); stating
its media type and shape in ``/openapi.json`` lets clients (and the schema test,
tests/service/test_api_schema.py) rely on them as on the success bodies. The shape is
given inline rather than as a component because FastAPI only collects components from
models, and a model in ``responses=`` would also be documented as ``application/json``.
"""

from __future__ import annotations

from ..problems import PROBLEM_JSON

__all__ = ["AUTH_ERRORS", "BODY_ERRORS", "ERRORS", "WRITE_ERRORS", "location", "problem"]


def problem(status: int, description: str, *, headers: dict | None = None) -> dict:
    """The ``responses=`` entry of a ``status`` problem: ``description``, the problem's
    schema (its ``status`` member is ``status``), and any response ``headers``."""
    properties: dict = {
        "type": {"type": "string", "description": "Always about:blank."},
        "title": {"type": "string"},
        "status": {"type": "integer", "const": status},
        "detail": {"type": "string", "description": "What was wrong, in one line."},
        "instance": {"type": "string", "description": "The request path."},
    }
    if status == 422:
        properties["errors"] = {
            "type": "array",
            "description": "Each invalid field (request validation only).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        }
    entry: dict = {
        "description": description,
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": properties,
                }
            }
        },
    }
    if headers:
        entry["headers"] = headers
    return entry


def _header(description: str) -> dict:
    return {"description": description, "required": True, "schema": {"type": "string"}}


def location(description: str) -> dict:
    """A success ``responses=`` entry whose ``Location`` header points at the resource."""
    return {"description": description, "headers": {"Location": _header("Its URL path.")}}


#: What any route taking an API key may answer before it runs.
AUTH_ERRORS = {
    401: problem(
        401,
        "No API key, or an unknown one.",
        headers={"WWW-Authenticate": _header('`Bearer realm="vigie"`.')},
    ),
    403: problem(403, "The key lacks the scope (named in `scopes`)."),
    429: problem(
        429,
        "Rate limit; see `Retry-After`.",
        headers={"Retry-After": _header("Seconds to wait.")},
    ),
}
#: The failures of a route reading or changing one resource.
ERRORS = {
    401: AUTH_ERRORS[401],
    403: AUTH_ERRORS[403],
    404: problem(404, "No such resource."),
    422: problem(422, "Invalid request; `errors` names each field."),
    429: AUTH_ERRORS[429],
}
#: What a route creating a resource may answer besides :data:`ERRORS`.
WRITE_ERRORS = {**ERRORS, 409: problem(409, "It already exists.")}
#: What a route taking a JSON body may answer besides :data:`ERRORS`: the body is refused
#: before it is validated.
BODY_ERRORS = {
    400: problem(400, "The body could not be read as JSON (e.g. it is not UTF-8)."),
    413: problem(413, "Request body too large."),
}
