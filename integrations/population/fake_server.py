"""A fake of the registry's HTTP exchange (LGSP / NDXP style), wrapping a :class:`StubRegistry`.

Run it with ``cardsvc fake-registry --port P`` (:func:`serve_fake_registry`), or in-process for tests with
:class:`RunningFakeRegistry`.

Authentication
    ``POST /token`` with ``{"AccessKey", "SecretKey", "AppName", "PartnerCode"}`` answers
    ``{"access_token", "token_type": "Bearer", "expires_in"}`` (seconds). Every operation then needs
    ``Authorization: Bearer <access_token>`` and the per-officer hash header
    ``X-Officer-Hash: hex(HMAC-SHA256(key=SecretKey, msg=MaCanBo + "|" + MaYeuCau))`` (UTF-8; see
    :func:`~integrations.population.wire.officer_hash`).

Operations — ``POST /api/dancu/<operation>`` with a JSON body. Every body carries the call context ``MaYeuCau``
(request id, ≤ 40 characters), ``MaDVC`` (procedure), ``MaTichHop`` (service), ``MaDonVi`` (agency), ``MaCanBo``
(officer) and ``MucDich`` (purpose, see :class:`~integrations.population.models.Purpose`). ID numbers travel only
in bodies, never in URLs.

``XacThucThongTinCongDan`` (verify)
    in: ``SoDinhDanh`` (12 digits) or ``SoCMND`` (9), ``HoVaTen``, ``NgayThangNamSinh`` (yyyy-mm-dd or yyyy),
    ``GioiTinh`` (1 nam, 2 nữ; optional).
    out: ``KetQua`` (matched / mismatch / not_found / deceased), ``KhopHoVaTen``, ``KhopNgayThangNamSinh``,
    ``KhopGioiTinh`` (match / mismatch / unknown), ``HoVaTenChiKhacDau`` (diacritics-only name difference),
    ``ChiSoSanhNamSinh`` (only the birth year was compared).
``TraCuuThongTinCongDan`` (look up; purpose ``record_correction`` only)
    in: ``SoDinhDanh`` or ``SoCMND``.
    out: ``CongDan``: ``SoDinhDanh``, ``SoCMND``, ``Ho``, ``ChuDem``, ``Ten``, ``NgayThangNamSinh``, ``GioiTinh``,
    ``NgayMat`` — or null when the number is unknown.
``GuiYeuCauLo`` (submit a batch)
    in: ``DanhSach``: a list of verify bodies (without the context). out: ``MaLo`` (batch id).
``GetRequestStatus``
    in: ``MaLo``. out: ``MaLo``, ``TrangThai`` (pending / done).
``GetRequestResult``
    in: ``MaLo``. out: ``MaLo``, ``KetQua``: the verify answers in request order (400 ``batch_pending`` before).
``CungCapThongTinHoiVien`` (publish membership; purpose ``membership_publication``)
    in: ``SoDinhDanh``, ``MaToChuc``, ``MaChiHoi``, ``NgayVaoHoi``, ``TrangThaiHoiVien`` (active / suspended /
    ended), ``MaThe``, ``TheHieuLucTu``, ``TheHieuLucDen``. out: nothing but ``MaYeuCau``.
``RutThongTinHoiVien`` (withdraw membership; purpose ``membership_publication``)
    in: ``SoDinhDanh``, ``MaToChuc``. out: nothing but ``MaYeuCau``.
``LayThongBaoThayDoi`` (notification feed; purpose ``change_monitoring``)
    in: ``ViTri`` (cursor, null for the start), ``SoLuong`` (limit, 1–500).
    out: ``DanhSachThongBao`` (``MaThongBao``, ``LoaiThongBao`` = death / name_change / id_number_change,
    ``SoDinhDanh``, ``NgayXayRa``, ``HoMoi``, ``ChuDemMoi``, ``TenMoi``, ``SoDinhDanhMoi``), ``ViTriTiepTheo``.

Every answer echoes ``MaYeuCau``. Errors answer ``{"MaLoi": code, "MoTa": text, "MaYeuCau": ...}``: 400 for a
malformed or refused request (``invalid_id_number``, ``invalid_request_id``, ``unknown_batch`` …), 403 for
``purpose_not_allowed``, 401 for authentication (``invalid_credentials``, ``invalid_token``,
``invalid_officer_hash``), 404 for an unknown operation, 429 with ``Retry-After`` (whole seconds) when throttled,
503 when unavailable.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from integrations.population.errors import (
    AuthFailure,
    RegistryError,
    RegistryTimeout,
    RejectedRequest,
    Throttled,
    Unavailable,
)
from integrations.population.models import CallContext, LookupRequest, Operation, PersonRecord
from integrations.population.stub import StubRegistry
from integrations.population.wire import (
    OFFICER_HASH_HEADER,
    WireError,
    decode_context,
    decode_fact,
    decode_id_number,
    decode_verify_request,
    encode_notification,
    encode_person,
    encode_verify_result,
    officer_hash,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_CREDENTIALS",
    "TOKEN_PATH",
    "FakeCredentials",
    "RunningFakeRegistry",
    "create_fake_registry_app",
    "run",
    "running_fake_registry",
    "serve_fake_registry",
]

API_PREFIX = "/api/dancu"
TOKEN_PATH = "/token"
_MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class FakeCredentials:
    """The one application the fake server knows (AccessKey / SecretKey / AppName / PartnerCode)."""

    access_key: str = "fake-access-key"
    secret_key: str = "fake-secret-key-0123456789"
    app_name: str = "cardsvc"
    partner_code: str = "HLHPN"
    token_lifetime: float = 3600.0


DEFAULT_CREDENTIALS = FakeCredentials()


def _error(status: int, code: str, message: str, request_id: Any = None, headers: dict[str, str] | None = None) -> (
    JSONResponse
):
    return JSONResponse({"MaLoi": code, "MoTa": message, "MaYeuCau": request_id}, status_code=status, headers=headers)


def _registry_error(exc: RegistryError, request_id: str) -> JSONResponse:
    if isinstance(exc, Throttled):
        retry_after = str(max(1, math.ceil(exc.retry_after)))
        return _error(429, "throttled", str(exc), request_id, {"Retry-After": retry_after})
    if isinstance(exc, RejectedRequest):
        status = 403 if exc.code == "purpose_not_allowed" else 400
        return _error(status, exc.code, str(exc), request_id)
    if isinstance(exc, AuthFailure):
        return _error(401, "auth_failure", str(exc), request_id)
    if isinstance(exc, RegistryTimeout):
        return _error(504, "timeout", str(exc), request_id)
    if isinstance(exc, Unavailable):
        return _error(503, "unavailable", str(exc), request_id)
    return _error(500, "internal_error", "the registry failed", request_id)


def create_fake_registry_app(
    stub: StubRegistry,
    credentials: FakeCredentials = DEFAULT_CREDENTIALS,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """An ASGI app speaking the registry's HTTP form in front of ``stub`` (``app.state.stub`` may be replaced)."""
    app = FastAPI(title="Fake population registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stub = stub
    tokens: dict[str, float] = {}
    tokens_lock = threading.Lock()

    async def read_json(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "malformed_json", "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "malformed_json", "the body must be a JSON object")
        return body

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        body = await read_json(request)
        if isinstance(body, JSONResponse):
            return body
        presented = (body.get("AccessKey"), body.get("SecretKey"), body.get("AppName"), body.get("PartnerCode"))
        expected = (credentials.access_key, credentials.secret_key, credentials.app_name, credentials.partner_code)
        if not all(isinstance(v, str) for v in presented) or not all(
            secrets.compare_digest(str(p), e) for p, e in zip(presented, expected, strict=True)
        ):
            return _error(401, "invalid_credentials", "unknown AccessKey/SecretKey/AppName/PartnerCode")
        access_token = secrets.token_urlsafe(32)
        with tokens_lock:
            tokens[access_token] = clock() + credentials.token_lifetime
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": credentials.token_lifetime}
        )

    @app.post(API_PREFIX + "/{operation}")
    async def operation(operation: str, request: Request) -> JSONResponse:
        try:
            op = Operation(operation)
        except ValueError:
            return _error(404, "unknown_operation", "no such operation")
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        with tokens_lock:
            expiry = tokens.get(access_token)
        if scheme.lower() != "bearer" or expiry is None or expiry < clock():
            return _error(401, "invalid_token", "missing, unknown or expired access token")
        body = await read_json(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            context = decode_context(body)
        except WireError as exc:
            return _error(400, exc.code, str(exc), body.get("MaYeuCau"))
        presented_hash = request.headers.get(OFFICER_HASH_HEADER, "")
        expected_hash = officer_hash(credentials.secret_key, context.officer_code, context.request_id)
        if not secrets.compare_digest(presented_hash, expected_hash):
            return _error(401, "invalid_officer_hash", f"{OFFICER_HASH_HEADER} does not match", context.request_id)
        current: StubRegistry = app.state.stub
        try:
            answer = await run_in_threadpool(_dispatch, current, op, context, body)
        except WireError as exc:
            return _error(400, exc.code, str(exc), context.request_id)
        except RegistryError as exc:
            return _registry_error(exc, context.request_id)
        return JSONResponse({"MaYeuCau": context.request_id, **answer})

    return app


def _dispatch(stub: StubRegistry, op: Operation, context: CallContext, body: dict[str, Any]) -> dict[str, Any]:
    """Decode the operation's fields, call the stub, encode its answer."""
    if op is Operation.VERIFY:
        return encode_verify_result(stub.verify_identity(context, decode_verify_request(body)))
    if op is Operation.LOOKUP:
        record = stub.lookup(context, LookupRequest(decode_id_number(body)))
        return {"CongDan": encode_person(record) if record else None}
    if op is Operation.SUBMIT_BATCH:
        items = body.get("DanhSach")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise WireError("invalid_field", "DanhSach must be a list of objects")
        return {"MaLo": stub.submit_batch(context, [decode_verify_request(item) for item in items])}
    if op in (Operation.BATCH_STATUS, Operation.BATCH_RESULT):
        batch_id = body.get("MaLo")
        if not isinstance(batch_id, str) or not batch_id:
            raise WireError("invalid_field", "MaLo must be a non-empty string")
        if op is Operation.BATCH_STATUS:
            return {"MaLo": batch_id, "TrangThai": stub.poll_batch(context, batch_id).state.value}
        results = stub.batch_result(context, batch_id)
        return {"MaLo": batch_id, "TrangThai": "done", "KetQua": [encode_verify_result(r) for r in results]}
    if op is Operation.PUBLISH_MEMBERSHIP:
        stub.publish_membership(context, decode_fact(body))
        return {}
    if op is Operation.WITHDRAW_MEMBERSHIP:
        organisation = body.get("MaToChuc")
        if not isinstance(organisation, str) or not organisation:
            raise WireError("invalid_field", "MaToChuc must be a non-empty string")
        stub.withdraw_membership(context, decode_id_number(body), organisation)
        return {}
    cursor, limit = body.get("ViTri"), body.get("SoLuong", 100)
    if cursor is not None and not isinstance(cursor, str):
        raise WireError("invalid_cursor", "ViTri must be a string or null")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= _MAX_LIMIT:
        raise WireError("invalid_limit", f"SoLuong must be an integer from 1 to {_MAX_LIMIT}")
    page, next_cursor = stub.notifications(context, cursor, limit)
    return {"DanhSachThongBao": [encode_notification(n) for n in page], "ViTriTiepTheo": next_cursor}


class RunningFakeRegistry:
    """A fake registry served by uvicorn in a background thread on a real socket (port 0: a free port).

    Use as a context manager. ``stub`` can be replaced between tests; ``base_url`` is ``http://host:port``.
    """

    def __init__(
        self,
        stub: StubRegistry,
        credentials: FakeCredentials = DEFAULT_CREDENTIALS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **uvicorn_options: Any,
    ) -> None:
        self.credentials = credentials
        self.app = create_fake_registry_app(stub, credentials)
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off", **uvicorn_options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-registry", daemon=True)
        self._scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
        self._host = host
        self.port = port

    @property
    def stub(self) -> StubRegistry:
        """The stub currently served."""
        stub: StubRegistry = self.app.state.stub
        return stub

    @stub.setter
    def stub(self, stub: StubRegistry) -> None:
        self.app.state.stub = stub

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` when served with TLS)."""
        return f"{self._scheme}://{self._host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the socket listens. Raises RuntimeError if it does not start in time."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake registry did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningFakeRegistry:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def running_fake_registry(stub: StubRegistry, **options: Any) -> Iterator[RunningFakeRegistry]:
    """``with running_fake_registry(StubRegistry()) as server: ... server.base_url``."""
    with RunningFakeRegistry(stub, **options) as server:
        yield server


def serve_fake_registry(
    port: int,
    host: str = "127.0.0.1",
    records: Iterable[PersonRecord] = (),
    *,
    credentials: FakeCredentials = DEFAULT_CREDENTIALS,
    **stub_options: Any,
) -> None:
    """Serve a fake registry in the foreground until interrupted (for ``cardsvc fake-registry``).

    Args:
        port, host: where to listen.
        records: records known as given (e.g. the demo members), besides the synthetic population.
        credentials: the keys clients must present (default :data:`DEFAULT_CREDENTIALS`).
        stub_options: passed to :class:`StubRegistry` (seed, synthetic, latency, error_rate, throttle_per_second …).
    """
    app = create_fake_registry_app(StubRegistry(records, **stub_options), credentials)
    uvicorn.run(app, host=host, port=port, log_level="info")


def run(port: int, host: str = "127.0.0.1", records: Iterable[PersonRecord] = (), **stub_options: Any) -> None:
    """Alias of :func:`serve_fake_registry`."""
    serve_fake_registry(port, host, records, **stub_options)
