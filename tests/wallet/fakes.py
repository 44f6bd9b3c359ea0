"""Fake Apple push service (HTTP/2 over TLS, with ALPN, written on ``h2``) and fake Google Wallet API + OAuth token
endpoint (uvicorn), both real servers on 127.0.0.1 that the real adapters talk to; plus the test PKI they need."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import jwt
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cardsvc.demo.wallet import make_ca, make_pass_certificate, service_account_json

PASS_TYPE_ID = "pass.vn.example.test"
TEAM_ID = "TESTTEAM01"
APNS_KEY_ID = "TESTKEY001"
ISSUER_ID = "3388000000000099999"


@dataclass
class WalletPki:
    """Everything the wallet needs, made in the test: a CA standing in for Apple's WWDR, a pass certificate, an
    APNs key, a TLS certificate for the fakes and a Google service-account key (token URI set later)."""

    folder: Path
    ca: x509.Certificate
    pass_certificate: x509.Certificate
    apns_key: ec.EllipticCurvePrivateKey
    paths: dict[str, Path]

    def service_account(self, token_uri: str) -> Path:
        path = self.folder / "service-account.json"
        path.write_bytes(service_account_json("cardsvc-test@test.invalid", token_uri, development=False))
        return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(folder: Path, *, pass_days: int = 365) -> WalletPki:
    now = datetime.now(UTC)
    ca, ca_key = make_ca("Test WWDR CA", "cardsvc tests", now)
    cert, key = make_pass_certificate(ca, ca_key, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID,
                                      organization="cardsvc tests", now=now, days=pass_days)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    tls_cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(ca.subject).public_key(tls_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
    apns_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca": _pem(ca), "certificate": _pem(cert), "key": _key_pem(key), "tls_certificate": _pem(tls_cert),
             "tls_key": _key_pem(tls_key), "apns_key": _key_pem(apns_key)}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return WalletPki(folder, ca, cert, apns_key, paths)


@dataclass
class Push:
    token: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApns:
    """APNs as far as pass updates go: ``POST /3/device/<token>`` over HTTP/2 (TLS, ALPN ``h2`` only), token auth
    checked against the team's public key. ``answers`` maps a device token to (status, reason)."""

    pki: WalletPki
    pushes: list[Push] = field(default_factory=list)
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    protocols: list[str | None] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.pki.paths["tls_certificate"], self.pki.paths["tls_key"])
        self._context.set_alpn_protocols(["h2"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fake-apns")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            sock = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        self.protocols.append(sock.selected_alpn_protocol())
        if sock.selected_alpn_protocol() != "h2":
            sock.close()
            return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        with sock:
            while not self._stopped.is_set():
                try:
                    data = sock.recv(65535)
                except OSError:
                    return
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = ({str(k): str(v) for k, v in event.headers or []}, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        status, reason = self._answer(headers, bytes(body))
                        payload = json.dumps({"reason": reason}).encode() if reason else b""
                        conn.send_headers(event.stream_id, [(":status", str(status)),
                                                            ("apns-id", secrets.token_hex(8))],
                                          end_stream=not payload)
                        if payload:
                            conn.send_data(event.stream_id, payload, end_stream=True)
                sock.sendall(conn.data_to_send())

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            return 404, "BadPath"
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.pki.apns_key.public_key(), algorithms=["ES256"],
                                options={"require": ["iat", "iss"]})
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if scheme != "bearer" or header.get("kid") != APNS_KEY_ID or claims["iss"] != TEAM_ID:
            return 403, "InvalidProviderToken"
        if headers.get("apns-topic") != PASS_TYPE_ID:
            return 400, "DeviceTokenNotForTopic"
        device = path.removeprefix("/3/device/")
        self.pushes.append(Push(device, headers, body))
        return self.answers.get(device, (200, ""))

    def __enter__(self) -> FakeApns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()


class FakeGoogleWallet:
    """Google's OAuth token endpoint and the Wallet API's generic objects, on one uvicorn server.

    ``objects`` holds what members saved (a test saves an object as Google would from a save JWT); ``fail_next``
    lists statuses the next object updates answer with instead of succeeding."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.updates: list[tuple[str, dict[str, Any]]] = []
        self.fail_next: list[int] = []
        self.tokens_issued = 0
        self.account_public_key: rsa.RSAPublicKey | None = None
        self.client_email = ""
        self._tokens: set[str] = set()
        app = Starlette(routes=[Route("/token", self._token, methods=["POST"]),
                                Route("/walletobjects/v1/genericObject/{object_id}", self._object, methods=["PUT"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="fake-google-wallet")
        self.url = ""

    def trust(self, service_account_file: Path) -> None:
        """Accept assertions signed by this service account's key."""
        body = json.loads(service_account_file.read_bytes())
        key = serialization.load_pem_private_key(body["private_key"].encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.account_public_key = key.public_key()
        self.client_email = body["client_email"]

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        try:
            assert self.account_public_key is not None
            claims = jwt.decode(str(form.get("assertion")), self.account_public_key, algorithms=["RS256"],
                                audience=f"{self.url}/token", issuer=self.client_email)
        except (jwt.PyJWTError, AssertionError):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" \
                or "wallet_object.issuer" not in claims.get("scope", ""):
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        token = secrets.token_urlsafe(16)
        self._tokens.add(token)
        self.tokens_issued += 1
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _object(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return JSONResponse({"error": {"code": 401}}, status_code=401)
        if self.fail_next:
            return JSONResponse({"error": {"code": self.fail_next[0]}}, status_code=self.fail_next.pop(0))
        object_id = request.path_params["object_id"]
        if object_id not in self.objects:
            return JSONResponse({"error": {"code": 404}}, status_code=404)
        body = await request.json()
        self.objects[object_id] = body
        self.updates.append((object_id, body))
        return JSONResponse(body)

    def __enter__(self) -> FakeGoogleWallet:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Google Wallet did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@contextmanager
def running_fakes(pki: WalletPki) -> Iterator[tuple[FakeApns, FakeGoogleWallet]]:
    with FakeApns(pki) as apns, FakeGoogleWallet() as google:
        yield apns, google
