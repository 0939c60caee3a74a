"""The OpenAPI 3.1 document, written from the endpoint table (so the two cannot drift) and
the request schemas below, which say what `bodies` checks."""

from __future__ import annotations

import re
from typing import Any

from coordinator import __version__
from coordinator.http.api import ENDPOINTS, Endpoint

ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "reason": {"type": "string"},
        "field": {"type": "string", "description": "the field refused (422 only)"},
    },
    "required": ["error", "reason"],
}
DURATION = {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": ERROR,
    "JobRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["argv"],
        "properties": {
            "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "cpus": {"type": "integer", "minimum": 0, "default": 1},
            "mem": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
            "gpus": {"type": "integer", "minimum": 0, "default": 0},
            "runtime_s": DURATION | {"description": "runtime estimate, seconds or 30m"},
            "deadline_s": DURATION | {"description": "deadline, seconds from now"},
            "priority": {"type": "integer", "default": 0},
            "name": {"type": "string", "maxLength": 128},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "requeue": {"type": "boolean", "default": False},
        },
    },
    "PowerRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "force": {"type": "boolean", "default": False},
            "wait_s": {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
        },
    },
    "PickRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cpus": {"type": "integer", "minimum": 0},
            "gpus": {"type": "integer", "minimum": 0},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "strategy": {"type": "string"},
            "key": {"type": "string"},
        },
    },
}
REFUSALS = {401: "no token, or an unknown one", 403: "the token lacks the scope"}


def openapi_path(path: str) -> str:
    """Starlette's `{id:int}` is OpenAPI's `{id}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def operation(endpoint: Endpoint) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)", endpoint.path)
    ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in endpoint.query]
    answers = {200: "ok"} | endpoint.answers | ({} if endpoint.scope is None else REFUSALS)
    result: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "parameters": params,
        "responses": {
            str(code): {"description": text} | error_content(code) for code, text in answers.items()
        },
    }
    if endpoint.scope is not None:
        result["security"] = [{"bearer": []}]
        result["x-scope"] = endpoint.scope
    if endpoint.body is not None:
        schema = {"$ref": f"#/components/schemas/{endpoint.body}"}
        result["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    return result


def error_content(code: int) -> dict[str, Any]:
    if code < 400:
        return {}
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = operation(
            endpoint
        )
    paths["/api/v1/stream"] = {
        "get": {
            "summary": "the fleet as server-sent events (`fleet`: nodes, jobs, power events)",
            "security": [{"bearer": []}],
            "responses": {"200": {"description": "text/event-stream"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "dormouse", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
