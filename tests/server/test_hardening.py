"""Metrics at /metrics, rate limits (login per address, check-ins per station), CORS off by default."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from cardsvc.app import create_app
from cardsvc.db.models import SigningKey
from cardsvc.errors import TooManyRequests
from cardsvc.ratelimit import RateLimiter, RateLimits
from cardsvc.registry import registry_for
from cardsvc.security import PiiCipher
from cardsvc.services import cards, events, stations
from cardsvc.settings import Settings
from issuance.credential import credential_qr_text
from tests.conftest import PASSWORD, SYSTEM, Tree, login, make_member


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the limiter ------------------------------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 60, clock=clock, code="login_rate_limited")
    for _ in range(3):
        limiter.hit("a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit("a")
    assert refused.value.code == "login_rate_limited"
    assert refused.value.retry_after == 20  # one token comes back every 60/3 s
    limiter.hit("b")  # another key has its own bucket
    clock.now += 20
    limiter.hit("a")
    with pytest.raises(TooManyRequests):
        limiter.hit("a")


def test_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(100, 3600, clock=FakeClock())
    granted = []

    def worker() -> None:
        granted.extend(1 for _ in range(50) if limiter.acquire("k") == 0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100


def test_limiter_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 1, clock=clock, max_keys=100)
    for index in range(1000):
        limiter.hit(f"addr-{index}")
        clock.now += 0.001
    assert len(limiter) <= 100


def test_zero_switches_a_limit_off(settings: Settings) -> None:
    limits = RateLimits.from_settings(settings.model_copy(update={"login_rate_per_minute": 0,
                                                                  "checkin_rate_per_second": 0}))
    assert limits.login is None and limits.checkin is None


# -- the limits on the routes -----------------------------------------------------------------------------------


def test_login_attempts_per_address_get_429_with_retry_after(client: TestClient, app: FastAPI, tree: Tree) -> None:
    clock = FakeClock()
    app.state.rate_limits = RateLimits(login=RateLimiter(5, 60, clock=clock, code="login_rate_limited"),
                                       checkin=None)
    # Different (unknown) accounts: the per-account lockout never triggers, the per-address limit does.
    for index in range(5):
        assert client.post("/v1/auth/token", data={"username": f"nobody{index}", "password": "x"}).status_code == 401
    refused = client.post("/v1/auth/token", data={"username": "t.admin", "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.json()["code"] == "login_rate_limited"
    assert set(refused.json()) == {"code", "message", "details"}
    assert refused.headers["Retry-After"] == "12"
    # The limit is met before the username is looked at: the answer says nothing about whether it exists.
    unknown = client.post("/v1/auth/token", data={"username": "nobody.at.all", "password": PASSWORD})
    assert (unknown.status_code, unknown.json(), unknown.headers["Retry-After"]) \
        == (refused.status_code, refused.json(), refused.headers["Retry-After"])
    clock.now += 12
    assert client.post("/v1/auth/token", data={"username": "t.admin", "password": PASSWORD}).status_code == 200


def test_the_officer_pages_login_shares_the_limit_per_address(client: TestClient, app: FastAPI, tree: Tree) -> None:
    app.state.rate_limits = RateLimits(login=RateLimiter(3, 60, clock=FakeClock(), code="login_rate_limited"),
                                       checkin=None)
    form = client.get("/admin/login").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answers = [client.post("/admin/login", data={"username": f"nobody{index}", "password": "x", "csrf_token": token})
               for index in range(4)]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert answers[-1].headers["Retry-After"] == "20" and answers[-1].headers["content-type"].startswith("text/html")


def test_checkins_per_station_get_429(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                      cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    clock = FakeClock()
    app.state.rate_limits = RateLimits(login=None, checkin=RateLimiter(3, 1, clock=clock,
                                                                       code="checkin_rate_limited"))
    now = datetime.now(UTC)
    spec = events.EventSpec(chapter_id=tree.commune_a.id, title="Họp", venue="", starts_at=now,
                            ends_at=now + timedelta(hours=2))
    event = events.create_event(db, SYSTEM, spec)
    tokens = []
    for name in ("Cửa 1", "Cửa 2"):
        code = stations.register_station(db, SYSTEM, event.id, name).provisioning_code
        tokens.append(client.post("/v1/devices/provision", json={"code": code}).json()["device_token"])
    member = make_member(db, cipher, tree.branch_a)
    card = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    payload = credential_qr_text(card.credential)

    def scan(token: str, nonce: str) -> int:
        return client.post(f"/v1/events/{event.id}/checkins", headers={"Authorization": f"Bearer {token}"},
                           json={"source": "qr_scanner", "client_nonce": nonce, "payload": payload}).status_code

    assert [scan(tokens[0], f"nonce-rate-{i:04d}") for i in range(4)] == [200, 200, 200, 429]
    assert scan(tokens[1], "nonce-rate-other") == 200  # each station has its own bucket
    clock.now += 1
    assert scan(tokens[0], "nonce-rate-later") == 200


def test_registry_rate_limit_setting_reaches_the_adapter(settings: Settings) -> None:
    registry = registry_for(settings.model_copy(update={"registry_mode": "http",
                                                         "registry_rate_limit_per_second": 2.5}))
    assert registry._limiter is not None and registry._limiter.rate == 2.5  # type: ignore[attr-defined]
    unlimited = registry_for(settings.model_copy(update={"registry_mode": "http",
                                                          "registry_rate_limit_per_second": 0}))
    assert unlimited._limiter is None  # type: ignore[attr-defined]


# -- CORS ----------------------------------------------------------------------------------------------------------


def test_no_cross_origin_access_by_default(client: TestClient) -> None:
    preflight = client.options("/v1/me", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers
    response = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_listed_origins_are_allowed(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": "https://a.example, https://b.example"}))
    with TestClient(app) as client:
        preflight = client.options("/v1/me", headers={"Origin": "https://b.example",
                                                       "Access-Control-Request-Method": "GET",
                                                       "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://b.example"
        other = client.options("/v1/me", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
        assert other.headers.get("access-control-allow-origin") is None


# -- metrics -------------------------------------------------------------------------------------------------------


def test_metrics_need_localhost_or_the_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": "s3cret-metrics-token"}))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).json()["code"] == "invalid_token"
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"}).status_code == 200
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        assert local.get("/metrics").status_code == 200
    assert "/metrics" not in app.openapi()["paths"]


def _samples(app: FastAPI) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        text = local.get("/metrics").text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _delta(before: dict[tuple[str, frozenset[tuple[str, str]]], float],
           after: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_routes_checkins_and_jobs(client: TestClient, app: FastAPI, db: Session, tree: Tree,
                                                cipher: PiiCipher, signing_keys: dict[str, SigningKey]) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.admin")
    before = _samples(app)
    assert client.get(f"/v1/members/{member.id}", headers=headers).status_code == 200
    assert client.get("/v1/members/999999999", headers=headers).status_code == 404
    client.get("/no/such/path")
    now = datetime.now(UTC)
    event = events.create_event(db, SYSTEM, events.EventSpec(chapter_id=tree.commune_a.id, title="Họp", venue="",
                                                              starts_at=now, ends_at=now + timedelta(hours=2)))
    code = stations.register_station(db, SYSTEM, event.id, "Cửa").provisioning_code
    token = client.post("/v1/devices/provision", json={"code": code}).json()["device_token"]
    card = cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    for nonce, payload in (("nonce-metrics-a", credential_qr_text(card.credential)),
                           ("nonce-metrics-b", credential_qr_text(card.credential)),
                           ("nonce-metrics-c", "8401" + "0" * 40)):
        client.post(f"/v1/events/{event.id}/checkins", headers={"Authorization": f"Bearer {token}"},
                    json={"source": "qr_scanner", "client_nonce": nonce, "payload": payload})
    client.post(f"/v1/chapters/{tree.commune_a.id}/cards/batch", headers=headers, json={"subtree": True})
    after = _samples(app)

    requests = "cardsvc_http_requests_total"
    assert _delta(before, after, requests, method="GET", route="/v1/members/{member_id}", status="200") == 1
    assert _delta(before, after, requests, method="GET", route="/v1/members/{member_id}", status="404") == 1
    assert _delta(before, after, requests, method="GET", route="<unmatched>", status="404") == 1
    assert _delta(before, after, "cardsvc_http_request_duration_seconds_count", method="GET",
                  route="/v1/members/{member_id}") == 2
    checkins = "cardsvc_checkins_total"
    assert _delta(before, after, checkins, result="ok", reason="", source="qr_scanner") == 1
    assert _delta(before, after, checkins, result="error", reason="already_checked_in", source="qr_scanner") == 1
    assert _delta(before, after, "cardsvc_verifications_total", reason="valid") == 2
    assert _delta(before, after, "cardsvc_verifications_total", reason="malformed") == 1
    assert after[("cardsvc_jobs", frozenset({("kind", "card_batch"), ("status", "done")}))] >= 1
    assert any(name == "cardsvc_http_requests_in_progress" for name, _ in after)
    # Ids and personal data never become label values: only templates and codes.
    values = {value for _, labels in after for _, value in labels}
    assert not any(str(member.id) == value or member.full_name in value for value in values)


def test_metrics_multiprocess_mode(settings: Settings, tmp_path: pytest.TempPathFactory,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With PROMETHEUS_MULTIPROC_DIR the exposition adds up the workers' files (here: values of this process)."""
    import importlib

    import prometheus_client.values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    importlib.reload(prometheus_client.values)
    try:
        # Metric classes pick the value class when a metric is created: build the app after the reload.
        import prometheus_client.metrics as metric_classes

        monkeypatch.setattr(metric_classes.values, "ValueClass", prometheus_client.values.ValueClass)
        app = create_app(settings)
        with TestClient(app, client=("127.0.0.1", 50000)) as local:
            local.get("/healthz")
            text = local.get("/metrics").text
        assert any(path.name.startswith("counter_") for path in tmp_path.iterdir())  # type: ignore[attr-defined]
        assert 'cardsvc_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        importlib.reload(prometheus_client.values)
        metric_classes.values.ValueClass = prometheus_client.values.ValueClass


# -- database races and oversized numbers ---------------------------------------------------------------------------


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_deadlock_is_a_409_and_an_outage_a_503(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test-only/db-error/{sqlstate}")
    def fail(sqlstate: str) -> None:
        raise OperationalError("UPDATE …", {}, _DriverError(sqlstate))

    with TestClient(app, raise_server_exceptions=False) as client:
        deadlock = client.get("/test-only/db-error/40P01")
        assert (deadlock.status_code, deadlock.json()["code"]) == (409, "conflict")
        outage = client.get("/test-only/db-error/08006")
        assert (outage.status_code, outage.json()["code"]) == (503, "database_unavailable")
        assert outage.headers["Retry-After"] == "5"


def test_a_cancelled_statement_and_a_busy_pool_are_503_not_500(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test-only/statement-timeout")
    def cancelled() -> None:
        raise OperationalError("SELECT …", {}, _DriverError("57014"))

    @app.get("/test-only/pool-timeout")
    def pool_exhausted() -> None:
        raise PoolTimeout("QueuePool limit of size 3 overflow 0 reached")

    with TestClient(app, raise_server_exceptions=False) as client:
        slow = client.get("/test-only/statement-timeout")
        assert (slow.status_code, slow.json()["code"], slow.headers["Retry-After"]) == (503, "database_timeout", "5")
        busy = client.get("/test-only/pool-timeout")
        assert (busy.status_code, busy.json()["code"], busy.headers["Retry-After"]) == (503, "database_busy", "5")


def test_numbers_beyond_64_bits_are_404_or_422(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    too_big = "9" * 20
    path = client.get(f"/v1/members/{too_big}", headers=headers)
    assert (path.status_code, path.json()["code"]) == (404, "not_found")
    query = client.get(f"/v1/chapters?parent_id={too_big}", headers=headers)
    assert (query.status_code, query.json()["code"]) == (422, "validation_failed")
    assert client.get(f"/v1/members/{2**63 - 1}", headers=headers).status_code == 404  # the largest id: not found


def test_ids_no_64_bit_number_holds_are_404_in_paths_and_422_in_queries_and_bodies(
        client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative numbers, and ids in queries and bodies, used to reach the database driver (a 500)."""
    # The sync-run route builds its registry gateway before the body is refused.
    monkeypatch.setitem(app.state._state, "registry", registry_for(app.state.settings))
    headers = login(client, "t.admin")
    huge, negative = 2**64, -(10**20)
    member = make_member(db, cipher, tree.branch_a)
    now = datetime.now(UTC)
    event = events.create_event(db, SYSTEM, events.EventSpec(
        chapter_id=tree.commune_a.id, title="Họp", venue="", starts_at=now, ends_at=now + timedelta(hours=1),
        eligibility="invite"))
    for path in (f"/v1/members/{negative}", f"/v1/events/{negative}/stats", "/v1/members/0"):
        response = client.get(path, headers=headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    for query in (f"/v1/members?chapter_id={negative}", f"/v1/events?chapter_id={huge}",
                  f"/v1/identity/coverage?chapter_id={huge}", f"/v1/audit?before_id={huge}"):
        response = client.get(query, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), query
    bodies = [
        ("POST", "/v1/members", {"chapter_id": huge, "full_name": "Lan", "birth_date": "01/02/1990"}, "chapter_id"),
        ("PATCH", f"/v1/members/{member.id}", {"chapter_id": negative}, "chapter_id"),
        ("POST", f"/v1/chapters/{tree.branch_a.id}/move", {"parent_id": huge}, "parent_id"),
        ("POST", f"/v1/chapters/{tree.branch_a.id}/merge", {"into_id": huge}, "into_id"),
        ("POST", "/v1/events", {"chapter_id": huge, "title": "Họp", "starts_at": now.isoformat(),
                                "ends_at": (now + timedelta(hours=1)).isoformat()}, "chapter_id"),
        ("POST", f"/v1/events/{event.id}/invites", {"member_ids": [member.id, huge]}, "member_ids.1"),
        ("POST", f"/v1/events/{event.id}/checkins", {"source": "manual", "client_nonce": "big-ids-1",
                                                     "member_id": huge, "manual_reason": "quên thẻ"}, "member_id"),
        ("POST", "/v1/identity/sync-runs", {"chapter_id": huge}, "chapter_id"),
        ("POST", "/v1/officers", {"username": "big.ids", "password": "long enough password", "role": "officer",
                                  "chapter_id": huge}, "chapter_id"),
    ]
    for method, path, body, field in bodies:
        response = client.request(method, path, json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), path
        assert [detail["field"] for detail in response.json()["details"]] == [field], path
