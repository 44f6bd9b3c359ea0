"""Application factory: builds settings, database, crypto helpers, middleware, error handlers and routers."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from cardsvc import __version__
from cardsvc.api import audit, auth, cards, chapters, events, member_links, members, officers, publication, reports
from cardsvc.api import bindings as bindings_api
from cardsvc.api import data_subject as data_subject_api
from cardsvc.api import identity as identity_api
from cardsvc.api import keys as keys_api
from cardsvc.api import nfc_writes as nfc_writes_api
from cardsvc.api import wallet as wallet_api
from cardsvc.api.openapi import install_openapi
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.errors import CardsvcError, TooManyRequests
from cardsvc.logs import request_id_var
from cardsvc.metrics import Metrics, MetricsMiddleware, WalletCollector, metrics_endpoint
from cardsvc.ratelimit import RateLimits
from cardsvc.registry import registry_for
from cardsvc.security import OfficerTokens, PiiCipher
from cardsvc.services.checkins import TrustCache
from cardsvc.services.jobs import ThreadJobRunner
from cardsvc.services.kept_uploads import UploadKeeper
from cardsvc.services.keys import KeyRing, active_key
from cardsvc.services.status_lists import StatusListCache
from cardsvc.services.wallet import load_setup, readiness
from cardsvc.services.wallet_updates import start_worker
from cardsvc.settings import Settings
from cardsvc.web import install_web

log = logging.getLogger("cardsvc")
access_log = logging.getLogger("cardsvc.access")

# Headers for every response. The API serves JSON only, so the content policy can forbid everything; the web pages
# (served under their own paths) set their own policy.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), geolocation=(), microphone=()"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# FastAPI's interactive docs load Swagger UI / ReDoc from their CDN and use inline scripts.
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
DOCS_CSP = (b"content-security-policy", b"default-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
            b"img-src 'self' data: https://fastapi.tiangolo.com; frame-ancestors 'none'")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UPLOAD_PATHS = ("/v1/members/import", "/admin/import")


_SECRET_PATH = re.compile(r"^/m/[^/]+")
# Request ids: a random prefix per process and a counter (unique, and no system call per request).
_request_ids: tuple[int, str, Iterator[int]] = (0, "", itertools.count())


def _new_request_id() -> str:
    global _request_ids
    pid, prefix, counter = _request_ids
    if pid != os.getpid():  # First request of this (possibly forked) process.
        pid, prefix, counter = _request_ids = (os.getpid(), secrets.token_hex(4), itertools.count(1))
    return f"{prefix}{next(counter) & 0xFFFFFFFF:08x}"


def loggable_path(path: str) -> str:
    """The path as it may be logged: a member's card link works like a password, so its token is cut out."""
    return _SECRET_PATH.sub("/m/…", path)


def _error(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": details}, status_code=status,
                        headers=headers)


class RequestLimitsMiddleware:
    """Assigns a request id (honouring a sane ``X-Request-ID``) and caps request body sizes.

    The cap is enforced on the declared Content-Length and again on the bytes actually received, so a chunked
    body cannot slip past it. Uploads get a larger cap than JSON bodies.
    """

    def __init__(self, app: ASGIApp, *, max_json: int, max_upload: int) -> None:
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # ASGI servers give header names in lower case; only the two read here are decoded.
        supplied, declared = "", None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        request_id = supplied if _REQUEST_ID_RE.fullmatch(supplied) else _new_request_id()
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_upload if scope["path"] in UPLOAD_PATHS else self.max_json

        exceeded = False

        def too_large() -> JSONResponse:
            return _error(413, "payload_too_large", f"the request body exceeds {limit} bytes")

        started = time.perf_counter()
        status_seen = 0

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message.get("status", 0)) if not exceeded else 413
            if exceeded:
                # The application saw a cut-off body and answered something else; the client gets the 413.
                if message["type"] == "http.response.start":
                    message = {"type": "http.response.start", "status": 413,
                               "headers": [*too_large().raw_headers, (b"x-request-id", request_id.encode())]}
                elif message["type"] == "http.response.body":
                    message = {"type": "http.response.body", "body": too_large().body, "more_body": False}
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
                if not any(name == b"content-security-policy" for name, _ in headers):
                    headers.append(DOCS_CSP if scope["path"] in DOCS_PATHS else API_CSP)
                message["headers"] = headers
            await send(message)

        try:
            if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
                bad = _error(400, "invalid_characters", "the request contains a NUL character")
                await bad(scope, receive, send_with_id)
                return
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                await too_large()(scope, receive, send_with_id)
                return
            received = 0

            async def counting_receive() -> MutableMapping[str, Any]:
                nonlocal received, exceeded
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        exceeded = True
                        raise _BodyTooLarge(limit)
                return message

            try:
                await self.app(scope, counting_receive, send_with_id)
            except _BodyTooLarge:
                await too_large()(scope, receive, send_with_id)
        finally:
            # Path only: query strings may hold names typed into a search box.
            access_log.info("request", extra={"method": scope.get("method"), "path": loggable_path(scope["path"]),
                                              "status": status_seen,
                                              "ms": round((time.perf_counter() - started) * 1000, 1)})
            request_id_var.reset(token)


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _validation_details(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    details = []
    malformed = False
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            malformed = True
        details.append({"field": ".".join(location[1:]) or location[0] if location else None,
                        "location": location[0] if location else None,
                        "code": error.get("type"), "message": error.get("msg")})
    if malformed:
        return "malformed_json", "the request body is not valid JSON", details
    fields = ", ".join(sorted({d["field"] for d in details if d["field"]}))
    return "validation_failed", f"invalid input: {fields}" if fields else "invalid input", details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CardsvcError)
    async def cardsvc_error(_request: Request, exc: CardsvcError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        if exc.status_code == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return _error(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors()):
            # A path naming no possible object (an id that is not a positive 64-bit number): nothing is there.
            return _error(404, "not_found", "not found")
        code, message, details = _validation_details(exc)
        return _error(400 if code == "malformed_json" else 422, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "invalid_token", 403: "forbidden"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), None,
                      dict(exc.headers) if exc.headers else None)

    @app.exception_handler(OperationalError)
    async def operational_error(_request: Request, exc: OperationalError) -> JSONResponse:
        # Deadlocks and serialization failures are races like the integrity errors below: the client retries.
        if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001"):
            log.warning("transaction conflict: %s", type(exc.orig).__name__)
            return _error(409, "conflict", "the change conflicts with data written at the same time; retry")
        if getattr(exc.orig, "sqlstate", None) == "57014":
            # CARDSVC_DB_STATEMENT_TIMEOUT_MS cancelled the statement: its connection and thread are free again.
            log.error("database statement cancelled after the statement timeout")
            return _error(503, "database_timeout", "the database took too long to answer; retry shortly", None,
                          {"Retry-After": "5"})
        log.error("database error: %s", type(exc.orig).__name__)
        return _error(503, "database_unavailable", "the database is not answering; retry shortly", None,
                      {"Retry-After": "5"})

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(_request: Request, _exc: PoolTimeout) -> JSONResponse:
        log.error("no database connection became free in time")
        return _error(503, "database_busy", "every database connection is busy; retry shortly", None,
                      {"Retry-After": "5"})

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
        # A safety net for races that a service's own checks could not see (two requests at the same moment).
        log.warning("integrity error: %s", type(exc.orig).__name__)
        return _error(409, "conflict", "the change conflicts with data written at the same time; retry")


def readiness_problems(app: FastAPI) -> list[str]:
    problems = []
    try:
        with app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
            for purpose in ("trust", "card"):
                key = active_key(session, purpose)
                if key is None:
                    problems.append(f"no active {purpose} key")
                else:
                    app.state.keyring.signer_for(key)
    except SQLAlchemyError:
        problems.append("database unreachable")
    except (CardsvcError, ValueError, TypeError):
        problems.append("signing keys cannot be decrypted (wrong key-encryption key?)")
    return problems


# How long shutdown waits for background jobs to end their step once asked to stop (a registry call in flight is not
# waited for: the jobs' threads are daemon threads, and the call's item is taken over after its lease).
JOB_STOP_WAIT_SECONDS = 3.0


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A server process (``app.state.run_wallet_worker``, set by :func:`server_app`) starts its wallet worker when
    the server starts; at shutdown the worker and the background jobs are asked to stop and waited for a little."""
    if app.state.run_wallet_worker:
        app.state.wallet_worker = start_worker(app.state.wallet, app.state.session_factory, app.state.settings)
    yield

    def stop() -> None:
        runners = (app.state.registry_runner, app.state.job_runner)
        for runner in runners:
            runner.stopping.set()
        worker = app.state.wallet_worker
        if worker is not None:
            worker.stop(JOB_STOP_WAIT_SECONDS)
            app.state.wallet_worker = None
        for runner in runners:
            runner.stop(JOB_STOP_WAIT_SECONDS)

    await to_thread.run_sync(stop)


def server_app() -> FastAPI:
    """The application as a server process runs it (``cardsvc serve``; ``uvicorn cardsvc.app:server_app --factory``).

    :func:`create_app` with the settings from the environment, after which every object built so far is moved out
    of the garbage collector's sight (:func:`gc.freeze`): they live as long as the process, and full collections
    that walked them all stalled requests by tens of milliseconds under load.
    """
    app = create_app()
    # Its wallet worker starts with the server (the lifespan), not in tests that build the app themselves.
    app.state.run_wallet_worker = True
    gc.collect()
    gc.freeze()
    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI application. Nothing is created at import time; tests pass their own settings."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, statement_timeout_ms=settings.db_statement_timeout_ms)
    app = FastAPI(
        title="cardsvc",
        version=__version__,
        description="Smart member cards and identity for the Vietnam Women's Union.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.cipher = PiiCipher.from_settings(settings)
    app.state.tokens = OfficerTokens.from_settings(settings)
    app.state.keyring = KeyRing(settings.kek)
    app.state.status_list_cache = StatusListCache()
    app.state.upload_keeper = UploadKeeper.from_settings(settings)
    app.state.trust_cache = TrustCache()
    app.state.checkin_limiter = CapacityLimiter(settings.checkin_concurrency)
    app.state.job_runner = ThreadJobRunner()
    # Registry work runs on threads of its own, a few at a time: a registry that does not answer holds these
    # threads, never a request's thread or a database connection.
    app.state.registry_runner = ThreadJobRunner(settings.registry_job_concurrency, name="cardsvc-registry")
    app.state.registry = registry_for(settings)
    app.state.wallet = load_setup(settings)
    app.state.run_wallet_worker = False
    app.state.wallet_worker = None
    app.state.metrics = Metrics(lambda: app.state.session_factory)
    app.state.metrics.add_collector(WalletCollector(lambda: app.state.session_factory, lambda: app.state.wallet))
    app.state.rate_limits = RateLimits.from_settings(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestLimitsMiddleware, max_json=settings.max_json_body_bytes, max_upload=settings.max_upload_bytes
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if settings.cors_origin_list:
        # The API serves its own pages, so by default no other origin may call it from a browser; listed origins
        # may (credentials included: the officer token travels in the Authorization header).
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=True,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """The database answers and the signing keys can be loaded (503 otherwise, with what is missing); with wallet
        passes configured, their certificates' days left come along without deciding readiness."""
        problems = readiness_problems(app)
        body: dict[str, object] = {"status": "ready" if not problems else "not_ready", "problems": problems}
        if app.state.wallet.apple is not None or app.state.wallet.google is not None:
            body["wallet"] = readiness(app.state.wallet, datetime.now(UTC))
        return JSONResponse(body, status_code=200 if not problems else 503)

    # Routes are matched one by one in registration order: the health checks, then events (with check-in, the
    # door-rush route), then the rest.
    for module in (events, auth, chapters, members, member_links, cards, keys_api, officers, audit, publication,
                   reports, identity_api, data_subject_api, nfc_writes_api, wallet_api, bindings_api):
        app.include_router(module.router)
    app.include_router(wallet_api.logo_router)

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    install_web(app)
    install_openapi(app)

    return app

