"""Policy of the HTTP adapter: retries, backoff, Retry-After, circuit breaker, rate limit, timeouts, TLS, privacy.

All tests talk to the fake registry over real sockets; only time (sleep, clock) and jitter are injected.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.population import (
    AuthFailure,
    BirthDate,
    CallContext,
    CircuitOpen,
    CircuitState,
    HttpRegistry,
    LookupRequest,
    MembershipFact,
    MembershipStatus,
    Outcome,
    PersonName,
    PersonRecord,
    Purpose,
    RegistrySettings,
    RegistryTimeout,
    RejectedRequest,
    StubRegistry,
    Throttled,
    Unavailable,
    VerifyRequest,
    make_http_client,
)
from integrations.population.fake_server import RunningFakeRegistry
from integrations.population.wire import OFFICER_HASH_HEADER, officer_hash

ID_NUMBER = "001190000001"
OLD_ID_NUMBER = "025123456"
HOA = PersonRecord(ID_NUMBER, PersonName("Nguyễn", "Thị", "Hòa"), BirthDate(1990, 5, 1), "female", OLD_ID_NUMBER)
REQUEST = VerifyRequest(ID_NUMBER, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1), "female")


@dataclass
class FakeTime:
    """An injected clock whose sleep records the delay and moves the clock on."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Rig:
    registry: HttpRegistry
    stub: StubRegistry
    time: FakeTime
    requests: list[httpx.Request]

    def operation_calls(self) -> int:
        return sum(1 for r in self.requests if r.url.path.startswith("/api/dancu/"))

    def token_calls(self) -> int:
        return sum(1 for r in self.requests if r.url.path == "/token")


def context(purpose: Purpose = Purpose.IDENTITY_VERIFICATION) -> CallContext:
    return CallContext(CallContext.new_request_id(), "HV-XACTHUC", "HLHPN-DANCU", "HPN-001", "CB0001", purpose)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningFakeRegistry]:
    with RunningFakeRegistry(StubRegistry(synthetic=0)) as running:
        yield running


def base_settings(server: RunningFakeRegistry, **overrides: Any) -> RegistrySettings:
    credentials = server.credentials
    settings = RegistrySettings(
        base_url=server.base_url,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        app_name=credentials.app_name,
        partner_code=credentials.partner_code,
        agency_code="HPN-001",
        service_code="HLHPN-DANCU",
        timeout=5.0,
        max_retries=3,
        backoff_base=0.5,
        backoff_cap=30.0,
        breaker_threshold=100,
        rate_limit_per_second=None,
    )
    return replace(settings, **overrides)


@pytest.fixture
def rig(server: RunningFakeRegistry) -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(jitter: float = 1.0, stub_options: dict[str, Any] | None = None, **overrides: Any) -> Rig:
        stub = StubRegistry([HOA], synthetic=0, **(stub_options or {}))
        server.stub = stub
        settings = base_settings(server, **overrides)
        requests: list[httpx.Request] = []
        client = make_http_client(settings, event_hooks={"request": [requests.append]})
        clients.append(client)
        fake_time = FakeTime()
        registry = HttpRegistry(client, settings, sleep=fake_time.sleep, clock=fake_time.clock, random=lambda: jitter)
        return Rig(registry, stub, fake_time, requests)

    yield make
    for client in clients:
        client.close()


# -- retries and backoff -------------------------------------------------------------------------------------------


def test_retries_with_exponential_backoff_then_gives_up(rig: Any) -> None:
    r = rig(jitter=0.999999, stub_options={"error_rate": 1.0})
    with pytest.raises(Unavailable):
        r.registry.verify_identity(context(), REQUEST)
    assert r.operation_calls() == 4
    assert r.time.sleeps == pytest.approx([0.5, 1.0, 2.0], rel=1e-5)


def test_backoff_is_capped_and_jitter_stays_within_the_ceiling(server: RunningFakeRegistry, rig: Any) -> None:
    r = rig(jitter=0.999999, stub_options={"error_rate": 1.0}, max_retries=4, backoff_base=10.0, backoff_cap=15.0)
    with pytest.raises(Unavailable):
        r.registry.verify_identity(context(), REQUEST)
    assert r.time.sleeps == pytest.approx([10.0, 15.0, 15.0, 15.0], rel=1e-5)

    for jitter in (0.0, 0.3, 0.75):
        r = rig(jitter=jitter, stub_options={"error_rate": 1.0}, max_retries=3, backoff_base=1.0, backoff_cap=3.0)
        with pytest.raises(Unavailable):
            r.registry.verify_identity(context(), REQUEST)
        assert r.time.sleeps == pytest.approx([jitter * 1.0, jitter * 2.0, jitter * 3.0])


def test_retry_succeeds_when_the_registry_recovers(server: RunningFakeRegistry, rig: Any) -> None:
    r = rig(stub_options={"error_rate": 0.5, "seed": 7}, max_retries=10)
    outcomes = [r.registry.verify_identity(context(), REQUEST).outcome for _ in range(5)]
    assert outcomes == [Outcome.MATCHED] * 5
    assert r.operation_calls() > 5  # Some calls needed retries, and they were invisible to the caller.
    assert r.registry.circuit_state is CircuitState.CLOSED


def test_no_retry_on_rejected_request(rig: Any) -> None:
    r = rig()
    with pytest.raises(RejectedRequest) as caught:
        r.registry.verify_identity(context(), replace(REQUEST, id_number="12345"))
    assert caught.value.code == "invalid_id_number"
    with pytest.raises(RejectedRequest) as caught:
        r.registry.lookup(context(Purpose.IDENTITY_VERIFICATION), LookupRequest(ID_NUMBER))
    assert caught.value.code == "purpose_not_allowed"
    assert r.operation_calls() == 2
    assert r.time.sleeps == []


def test_no_retry_on_bad_credentials(rig: Any) -> None:
    r = rig(secret_key="wrong-secret")
    with pytest.raises(AuthFailure):
        r.registry.verify_identity(context(), REQUEST)
    assert (r.token_calls(), r.operation_calls(), r.time.sleeps) == (1, 0, [])


def test_fake_server_checks_token_and_officer_hash(server: RunningFakeRegistry, rig: Any) -> None:
    rig()
    credentials = server.credentials
    body = {"MaYeuCau": "R1", "MaDVC": "P", "MaTichHop": "S", "MaDonVi": "A", "MaCanBo": "CB0001",
            "MucDich": "identity_verification", "SoDinhDanh": ID_NUMBER, "HoVaTen": "Nguyễn Thị Hòa",
            "NgayThangNamSinh": "1990-05-01"}
    with httpx.Client(base_url=server.base_url) as client:
        token = client.post("/token", json={"AccessKey": credentials.access_key, "SecretKey": credentials.secret_key,
                                            "AppName": credentials.app_name, "PartnerCode": credentials.partner_code})
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        good_hash = officer_hash(credentials.secret_key, "CB0001", "R1")
        headers = {**bearer, OFFICER_HASH_HEADER: good_hash}
        ok = client.post("/api/dancu/XacThucThongTinCongDan", json=body, headers=headers)
        assert (ok.status_code, ok.json()["KetQua"], ok.json()["MaYeuCau"]) == (200, "matched", "R1")
        other_officer = officer_hash(credentials.secret_key, "CB0002", "R1")
        refused = client.post(
            "/api/dancu/XacThucThongTinCongDan", json=body, headers={**bearer, OFFICER_HASH_HEADER: other_officer}
        )
        assert (refused.status_code, refused.json()["MaLoi"]) == (401, "invalid_officer_hash")
        no_token = client.post("/api/dancu/XacThucThongTinCongDan", json=body, headers={OFFICER_HASH_HEADER: good_hash})
        assert (no_token.status_code, no_token.json()["MaLoi"]) == (401, "invalid_token")
        malformed = client.post("/api/dancu/XacThucThongTinCongDan", content=b"{not json", headers=headers)
        assert (malformed.status_code, malformed.json()["MaLoi"]) == (400, "malformed_json")
        long_id = client.post("/api/dancu/XacThucThongTinCongDan", json={**body, "MaYeuCau": "R" * 41}, headers=headers)
        assert (long_id.status_code, long_id.json()["MaLoi"]) == (400, "invalid_request_id")
        both = client.post("/api/dancu/XacThucThongTinCongDan", json={**body, "SoCMND": OLD_ID_NUMBER}, headers=headers)
        assert (both.status_code, both.json()["MaLoi"]) == (400, "invalid_id_number")
        assert ID_NUMBER not in both.text


def test_access_token_is_reused_and_refreshed_before_expiry(rig: Any) -> None:
    r = rig()
    for _ in range(3):
        r.registry.verify_identity(context(), REQUEST)
    assert r.token_calls() == 1
    r.time.now += 3600
    r.registry.verify_identity(context(), REQUEST)
    assert r.token_calls() == 2


# -- throttling ----------------------------------------------------------------------------------------------------


def test_retry_after_is_honoured(rig: Any) -> None:
    r = rig(stub_options={"throttle_per_second": 0.5}, max_retries=2)
    r.registry.verify_identity(context(), REQUEST)
    with pytest.raises(Throttled) as caught:
        r.registry.verify_identity(context(), REQUEST)
    # The server said "Retry-After: 2"; the fake sleep does not wait, so the retries are throttled again.
    assert r.time.sleeps == [2.0, 2.0]
    assert caught.value.retry_after == 2.0
    assert r.registry.circuit_state is CircuitState.CLOSED  # Throttling is not a registry failure.


def test_retry_after_longer_than_allowed_is_not_waited_for(rig: Any) -> None:
    r = rig(stub_options={"throttle_per_second": 0.1}, max_retry_after=5.0)
    r.registry.verify_identity(context(), REQUEST)
    with pytest.raises(Throttled) as caught:
        r.registry.verify_identity(context(), REQUEST)
    assert caught.value.retry_after == 10.0
    assert r.time.sleeps == []


def test_client_side_rate_limit_spaces_calls(rig: Any) -> None:
    r = rig(rate_limit_per_second=2.0, rate_limit_burst=1)
    for _ in range(4):
        r.registry.verify_identity(context(), REQUEST)
    assert r.time.sleeps == pytest.approx([0.5, 0.5, 0.5])
    assert r.operation_calls() == 4


def test_rate_limit_burst_allows_a_few_calls_at_once(rig: Any) -> None:
    r = rig(rate_limit_per_second=2.0, rate_limit_burst=3)
    for _ in range(4):
        r.registry.verify_identity(context(), REQUEST)
    assert r.time.sleeps == pytest.approx([0.5])


# -- circuit breaker -----------------------------------------------------------------------------------------------


def test_circuit_breaker_opens_half_opens_and_closes(rig: Any) -> None:
    r = rig(stub_options={"error_rate": 1.0}, max_retries=0, breaker_threshold=3, breaker_reset_seconds=30.0)
    for _ in range(3):
        with pytest.raises(Unavailable):
            r.registry.verify_identity(context(), REQUEST)
    assert r.registry.circuit_state is CircuitState.OPEN
    calls = r.operation_calls()
    with pytest.raises(CircuitOpen) as caught:
        r.registry.verify_identity(context(), REQUEST)
    assert caught.value.retry_after == pytest.approx(30.0)
    assert r.operation_calls() == calls  # Nothing was sent.

    r.time.now += 30
    assert r.registry.circuit_state is CircuitState.HALF_OPEN
    with pytest.raises(Unavailable):  # The trial call fails: open again at once.
        r.registry.verify_identity(context(), REQUEST)
    assert r.registry.circuit_state is CircuitState.OPEN

    r.time.now += 30
    r.stub.error_rate = 0.0
    assert r.registry.verify_identity(context(), REQUEST).outcome is Outcome.MATCHED
    assert r.registry.circuit_state is CircuitState.CLOSED


def test_circuit_open_stops_retries(rig: Any) -> None:
    r = rig(stub_options={"error_rate": 1.0}, max_retries=5, breaker_threshold=2)
    with pytest.raises(CircuitOpen):
        r.registry.verify_identity(context(), REQUEST)
    assert r.operation_calls() == 2
    assert len(r.time.sleeps) == 2


def test_rejected_requests_do_not_open_the_circuit(rig: Any) -> None:
    r = rig(max_retries=0, breaker_threshold=2)
    for _ in range(4):
        with pytest.raises(RejectedRequest):
            r.registry.verify_identity(context(), replace(REQUEST, id_number="1"))
    assert r.registry.circuit_state is CircuitState.CLOSED


# -- timeouts and connection errors --------------------------------------------------------------------------------


def test_slow_registry_raises_registry_timeout_without_repeating_the_call(rig: Any) -> None:
    r = rig(timeout=0.15, max_retries=3)
    r.registry.verify_identity(context(), REQUEST)  # Fetches the access token while the registry is fast.
    r.stub.latency = 0.6
    with pytest.raises(RegistryTimeout) as caught:
        r.registry.verify_identity(context(), REQUEST)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.unanswered and caught.value.retryable
    # The registry has the request and holds it: sending it again would only be held as long again.
    assert r.operation_calls() == 2
    assert r.time.sleeps == []


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further connection attempts, which time out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):  # takes the only place in the queue
            yield port


def test_connect_timeout_is_short_and_retried(server: RunningFakeRegistry, unaccepting_port: int) -> None:
    settings = replace(base_settings(server), base_url=f"http://127.0.0.1:{unaccepting_port}", timeout=60.0,
                       connect_timeout=0.2, max_retries=2)
    fake_time = FakeTime()
    with make_http_client(settings) as client:
        assert (client.timeout.connect, client.timeout.read) == (0.2, 60.0)
        registry = HttpRegistry(client, settings, sleep=fake_time.sleep, clock=fake_time.clock, random=lambda: 0.5)
        with pytest.raises(RegistryTimeout) as caught:
            registry.verify_identity(context(), REQUEST)
    assert isinstance(caught.value.__cause__, httpx.ConnectTimeout)
    assert not caught.value.unanswered
    assert fake_time.sleeps == [0.25, 0.5]  # Nothing was sent: trying again is cheap and safe.


def test_connection_refused_raises_unavailable(server: RunningFakeRegistry) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = replace(base_settings(server), base_url=f"http://127.0.0.1:{port}", max_retries=2)
    fake_time = FakeTime()
    with make_http_client(settings) as client:
        registry = HttpRegistry(client, settings, sleep=fake_time.sleep, clock=fake_time.clock, random=lambda: 0.5)
        with pytest.raises(Unavailable) as caught:
            registry.verify_identity(context(), REQUEST)
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert fake_time.sleeps == [0.25, 0.5]


# -- privacy: ID numbers never in URLs or logs ---------------------------------------------------------------------


def test_id_numbers_never_in_urls_or_logs(rig: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = rig(stub_options={"error_rate": 0.5, "seed": 3}, max_retries=10)
    registry = r.registry
    registry.verify_identity(context(), REQUEST)
    registry.verify_identity(context(), replace(REQUEST, id_number=OLD_ID_NUMBER))
    registry.lookup(context(Purpose.RECORD_CORRECTION), LookupRequest(ID_NUMBER))
    batch_id = registry.submit_batch(context(), [REQUEST])
    registry.poll_batch(context(), batch_id)
    registry.poll_batch(context(), batch_id)
    fact = MembershipFact(ID_NUMBER, "HLHPNVN", "HN-01", date(2015, 3, 8), MembershipStatus.ACTIVE, "C1")
    registry.publish_membership(context(Purpose.MEMBERSHIP_PUBLICATION), fact)
    registry.withdraw_membership(context(Purpose.MEMBERSHIP_PUBLICATION), ID_NUMBER, "HLHPNVN")
    registry.notifications(context(Purpose.CHANGE_MONITORING), None)
    with pytest.raises(RejectedRequest) as caught:
        registry.verify_identity(context(), replace(REQUEST, id_number="0011900000019"))

    assert any(call.method == "POST" for call in r.requests)
    assert len(r.time.sleeps) > 0, "the seed should have caused retries, which log"
    for request in r.requests:
        assert request.method == "POST"
        assert ID_NUMBER not in str(request.url) and OLD_ID_NUMBER not in str(request.url)
    logged = " ".join(f"{rec.getMessage()} {rec.args}" for rec in caplog.records)
    assert "retry" in logged
    for number in (ID_NUMBER, OLD_ID_NUMBER, "0011900000019"):
        assert number not in logged
        assert number not in str(caught.value)
    assert ID_NUMBER not in repr(REQUEST) and ID_NUMBER not in repr(fact) and ID_NUMBER not in repr(HOA)


# -- TLS -----------------------------------------------------------------------------------------------------------


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey]
                 | None, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    if not ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("Test registry CA", ca_key, None, ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_file, _ = _write(directory / "ca", ca_cert, ca_key)
    server_cert, server_key_file = _write(
        directory / "server", _certificate("localhost", server_key, issuer, server=True), server_key
    )
    client_cert, client_key_file = _write(directory / "client", _certificate("cardsvc", client_key, issuer), client_key)
    return {"ca": ca_file, "server_cert": server_cert, "server_key": server_key_file, "client_cert": client_cert,
            "client_key": client_key_file}


def test_mutual_tls(pki: dict[str, str]) -> None:
    stub = StubRegistry([HOA], synthetic=0)
    with RunningFakeRegistry(
        stub, host="localhost", ssl_certfile=pki["server_cert"], ssl_keyfile=pki["server_key"],
        ssl_ca_certs=pki["ca"], ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as tls_server:
        assert tls_server.base_url.startswith("https://localhost:")
        settings = replace(
            base_settings(tls_server), client_cert_file=pki["client_cert"], client_key_file=pki["client_key"],
            ca_file=pki["ca"], max_retries=0,
        )
        with make_http_client(settings) as client:
            assert HttpRegistry(client, settings).verify_identity(context(), REQUEST).outcome is Outcome.MATCHED

        without_certificate = replace(settings, client_cert_file=None, client_key_file=None)
        with make_http_client(without_certificate) as client, pytest.raises(Unavailable):
            HttpRegistry(client, without_certificate).verify_identity(context(), REQUEST)

        untrusted = replace(settings, ca_file=None)
        with make_http_client(untrusted) as client, pytest.raises(Unavailable):
            HttpRegistry(client, untrusted).verify_identity(context(), REQUEST)


def test_client_certificate_needs_its_key(server: RunningFakeRegistry, pki: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        make_http_client(replace(base_settings(server), client_cert_file=pki["client_cert"]))
