"""The Starlette app: the API's endpoints behind the token check, the live stream, the
OpenAPI document and the console's files. Errors are JSON with a reason, never a bare 500:
a DormouseError maps to 404 (not found), 409 (conflict) or 422 (bad input)."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from coordinator.http import auth, openapi
from coordinator.http.api import ENDPOINTS, Api, Endpoint, TooLarge
from coordinator.http.bodies import Invalid
from coordinator.http.stream import stream
from coordinator.services import tokens as token_service
from shared.errors import Conflict, DormouseError, NotFound

log = logging.getLogger(__name__)
CONSOLE = Path(__file__).parent / "console"
STREAM_INTERVAL_S = 1.0  # the console's live view: states and queue changes, each second
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="dormouse"'}
CONSOLE_HEADERS = {  # the page loads only its own files, and no other site may frame it
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def error(status: int, code: str, reason: str, **extra: object) -> JSONResponse:
    headers = WWW_AUTHENTICATE if status == 401 else None
    return JSONResponse({"error": code, "reason": reason, **extra}, status, headers=headers)


def refused(exc: DormouseError) -> JSONResponse:
    if isinstance(exc, TooLarge):
        return error(413, "too_large", exc.why, field=exc.field)
    if isinstance(exc, Invalid):
        return error(422, "invalid", exc.why, field=exc.field)
    if isinstance(exc, NotFound):
        return error(404, "not_found", str(exc))
    if isinstance(exc, Conflict):
        return error(409, "conflict", str(exc))
    return error(422, exc.reason, str(exc))


async def authorised(api: Api, request: Request, scope: str | None) -> JSONResponse | None:
    """The refusal for this request, or None; the token is looked up only when one is needed."""

    def scope_of(token: str) -> str | None:
        held = token_service.holder(api.engine, token)
        if held is None:
            return None
        request.state.token_name = held[1]  # who submits, for a job's `user`
        return held[0]

    header = request.headers.get("authorization")
    anonymous = api.settings.http.anonymous_read
    refusal = await run_in_threadpool(
        lambda: auth.check(header, scope, scope_of, anonymous_read=anonymous)
    )
    return None if refusal is None else error(refusal.status, refusal.error, refusal.reason)


def route(api: Api, endpoint: Endpoint) -> Route:
    async def handle(request: Request) -> Response:
        refusal = await authorised(api, request, endpoint.scope)
        if refusal is not None:
            return refusal
        try:
            return await endpoint.handler(api, request)
        except DormouseError as exc:
            return refused(exc)

    return Route(endpoint.path, handle, methods=[endpoint.method])


def create_app(api: Api, *, stream_interval_s: float = STREAM_INTERVAL_S) -> Starlette:
    async def live(request: Request) -> Response:
        refusal = await authorised(api, request, "read")
        return refusal or stream(api, request, stream_interval_s)

    async def document(request: Request) -> Response:
        return JSONResponse(openapi.document())

    async def console(request: Request) -> Response:
        return FileResponse(CONSOLE / "index.html", headers=CONSOLE_HEADERS)

    routes = [
        *(route(api, e) for e in ENDPOINTS),
        Route("/api/v1/stream", live, methods=["GET"]),
        Route("/api/v1/openapi.json", document, methods=["GET"]),
        Route("/", console, methods=["GET"]),
        Mount("/console", StaticFiles(directory=CONSOLE), name="console"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: crashed},
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as JSON."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
    return error(exc.status_code, code, str(exc.detail))


async def crashed(request: Request, exc: Exception) -> Response:
    """A bug, not a refusal: logged with its traceback, answered without one."""
    log.error("HTTP %s %s failed", request.method, request.url.path, exc_info=exc)
    return error(500, "internal", f"{type(exc).__name__}; the coordinator's log has the rest")
