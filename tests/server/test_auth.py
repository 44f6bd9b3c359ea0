"""Officer login, lockout, tokens and their attacks."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, LoginAddress
from cardsvc.errors import AuthenticationFailed
from cardsvc.security import OfficerTokens
from cardsvc.services import logins
from cardsvc.settings import Settings
from tests.conftest import PASSWORD, Tree, login


def test_login_returns_a_working_token(client: TestClient, tree: Tree) -> None:
    response = client.post("/v1/auth/token", data={"username": "t.officer.a", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 30 * 60
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "t.officer.a"
    assert me.json()["chapter"]["code"] == "T-HNI"


def test_username_is_case_insensitive(client: TestClient, tree: Tree) -> None:
    assert client.post("/v1/auth/token", data={"username": "T.Officer.A", "password": PASSWORD}).status_code == 200


@pytest.mark.parametrize(("username", "password"), [("t.officer.a", "wrong password"), ("nobody", PASSWORD)])
def test_wrong_credentials_are_401_with_one_message(client: TestClient, tree: Tree, username: str,
                                                    password: str) -> None:
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert response.json()["message"] == logins.WRONG_CREDENTIALS


def _from(app: FastAPI, address: str) -> TestClient:
    """A client whose requests come from ``address`` (the lockout counts per account and client address)."""
    return TestClient(app, client=(address, 50000))


def _attempt(client: TestClient, username: str, password: str) -> tuple[int, dict[str, object], str | None]:
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    return response.status_code, response.json(), response.headers.get("Retry-After")


def test_unknown_wrong_and_locked_answers_are_identical(app: FastAPI, client: TestClient, tree: Tree,
                                                        db: Session) -> None:
    attacker = _from(app, "203.0.113.7")
    wrong = _attempt(attacker, "t.viewer.a", "nope")
    for _ in range(4):
        assert _attempt(attacker, "t.viewer.a", "nope") == wrong
    # The pair (account, address) is now paused: even the right password gets the very same answer as a wrong
    # one, and as an unknown or disabled username, so that no answer tells a real username from an invented one.
    assert _attempt(attacker, "t.viewer.a", PASSWORD) == wrong
    assert _attempt(attacker, "nobody.here", PASSWORD) == wrong
    assert wrong[0] == 401 and wrong[2] is None
    assert wrong[1]["code"] == "invalid_credentials"
    failures = db.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_failed")).all()
    assert len(failures) == 5


def test_failures_from_one_address_never_lock_the_admin_out_of_her_known_address(
        app: FastAPI, client: TestClient, tree: Tree) -> None:
    office, attacker = _from(app, "198.51.100.20"), _from(app, "203.0.113.7")
    assert _attempt(office, "t.admin", PASSWORD)[0] == 200
    for _ in range(12):
        assert _attempt(attacker, "t.admin", "guess")[0] == 401
    assert _attempt(attacker, "t.admin", PASSWORD)[0] == 401
    assert _attempt(office, "t.admin", PASSWORD)[0] == 200


def test_many_addresses_pause_the_account_for_unknown_addresses_only(tree: Tree, db: Session,
                                                                     settings: Settings) -> None:
    tokens = OfficerTokens.from_settings(settings)

    def attempt(address: str, password: str) -> bool:
        try:
            logins.login(db, tokens, username="t.admin", password=password, address=address, max_failures=5,
                         lockout_seconds=60)
        except AuthenticationFailed:
            return False
        return True

    assert attempt("198.51.100.20", PASSWORD)
    # A guesser spread over many addresses, each staying under the per-address threshold.
    for index in range(5 * logins.UNKNOWN_ADDRESS_FACTOR):
        assert not attempt(f"203.0.113.{index % 50}", "guess")
    assert not attempt("192.0.2.99", PASSWORD)  # a new address waits...
    assert attempt("198.51.100.20", PASSWORD)  # ...the address she signed in from does not


def test_the_pause_of_a_pair_grows_with_further_failures(client: TestClient, tree: Tree, db: Session) -> None:
    officer = tree.officers["t.viewer.a"]
    for failures, expected in ((4, 60), (5, 120), (9, 1920), (40, 3600)):
        db.execute(delete(LoginAddress).where(LoginAddress.officer_id == officer.id))
        db.add(LoginAddress(officer_id=officer.id, address="testclient", failures=failures))
        db.commit()
        client.post("/v1/auth/token", data={"username": "t.viewer.a", "password": "nope"})
        pair = db.scalars(select(LoginAddress).where(LoginAddress.officer_id == officer.id)).one()
        db.refresh(pair)
        assert pair.failures == failures + 1 and pair.locked_until is not None
        remaining = (pair.locked_until - datetime.now(UTC)).total_seconds()
        assert expected - 5 < remaining <= expected


def test_enabling_an_account_lifts_its_pauses(app: FastAPI, client: TestClient, tree: Tree) -> None:
    attacker = _from(app, "203.0.113.7")
    for _ in range(5):
        _attempt(attacker, "t.viewer.a", "nope")
    assert _attempt(attacker, "t.viewer.a", PASSWORD)[0] == 401
    officer_id = tree.officers["t.viewer.a"].id
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": True},
                       headers=login(client, "t.admin")).status_code == 200
    assert _attempt(attacker, "t.viewer.a", PASSWORD)[0] == 200


def test_an_ipv6_client_counts_by_its_64_prefix() -> None:
    assert logins.address_key("2001:db8:1:2:aaaa::1") == logins.address_key("2001:db8:1:2:bbbb::9")
    assert logins.address_key("2001:db8:1:3::1") != logins.address_key("2001:db8:1:2::1")
    assert logins.address_key("::ffff:198.51.100.20") == "198.51.100.20"
    assert logins.address_key("x" * 300) == "x" * 64


def test_disabled_officer_cannot_use_an_old_token(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.b")
    admin = login(client, "t.admin")
    officer_id = tree.officers["t.officer.b"].id
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": False}, headers=admin).status_code == 200
    assert client.get("/v1/me", headers=headers).status_code == 401
    assert client.post("/v1/auth/token", data={"username": "t.officer.b", "password": PASSWORD}).status_code == 401
    # Enabling the account again does not bring its old tokens back.
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": True}, headers=admin).status_code == 200
    assert client.get("/v1/me", headers=headers).status_code == 401
    login(client, "t.officer.b")


def test_a_password_change_ends_every_existing_token(client: TestClient, tree: Tree) -> None:
    phone, laptop = login(client, "t.officer.a"), login(client, "t.officer.a")
    changed = client.post("/v1/me/password", json={"current_password": PASSWORD,
                                                   "new_password": "a new long password"}, headers=laptop)
    assert changed.status_code == 204
    for headers in (phone, laptop):
        assert client.get("/v1/me", headers=headers).status_code == 401
        assert client.post("/v1/auth/refresh", headers=headers).status_code == 401
    assert client.get("/v1/me", headers=login(client, "t.officer.a", "a new long password")).status_code == 200


def test_an_officer_signs_herself_out_everywhere(client: TestClient, tree: Tree) -> None:
    phone, laptop = login(client, "t.officer.a"), login(client, "t.officer.a")
    assert client.post("/v1/me/sign-out-everywhere", headers=laptop).status_code == 204
    assert client.get("/v1/me", headers=phone).status_code == 401
    assert client.get("/v1/me", headers=laptop).status_code == 401
    assert client.get("/v1/me", headers=login(client, "t.officer.a")).status_code == 200


def test_an_admin_signs_another_officer_out_everywhere(client: TestClient, tree: Tree, db: Session) -> None:
    victim = login(client, "t.officer.b")
    target = tree.officers["t.officer.b"].id
    refused = client.post(f"/v1/officers/{target}/sign-out-everywhere", headers=login(client, "t.officer.a"))
    assert refused.status_code == 403
    assert client.get("/v1/me", headers=victim).status_code == 200
    admin = login(client, "t.admin")
    assert client.post(f"/v1/officers/{target}/sign-out-everywhere", headers=admin).status_code == 204
    assert client.get("/v1/me", headers=victim).status_code == 401
    assert client.get("/v1/me", headers=admin).status_code == 200
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "officer.sign_out_everywhere")).one()
    assert entry.target_id == str(target) and entry.actor_name == "t.admin"


def test_refresh_issues_a_new_token(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    response = client.post("/v1/auth/refresh", headers=headers)
    assert response.status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}).status_code \
        == 200


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_refresh_keeps_the_login_time(client: TestClient, tree: Tree) -> None:
    first = login(client, "t.officer.a")["Authorization"].removeprefix("Bearer ")
    refreshed = client.post("/v1/auth/refresh", headers={"Authorization": f"Bearer {first}"}).json()
    assert _claims(refreshed["access_token"])["auth_time"] == _claims(first)["auth_time"]


@pytest.mark.parametrize(("hours_ago", "refreshed"), [(11.5, True), (12.5, False)])
def test_refresh_stops_after_the_session_limit(client: TestClient, tree: Tree, settings: Settings,
                                               hours_ago: float, refreshed: bool) -> None:
    """A token a client has kept refreshing since a password login long ago (still within its own 30 minutes)."""
    now = int(time.time())
    signed_in = now - int(hours_ago * 3600)
    claims = {"sub": str(tree.officers["t.officer.a"].id), "iss": "cardsvc", "aud": "cardsvc-officers",
              "iat": now - 60, "exp": now + 600, "jti": "x", "auth_time": signed_in, "sep": 0}
    token = jwt.encode(claims, settings.derived_key("officer-token"), algorithm="HS256")
    response = client.post("/v1/auth/refresh", headers={"Authorization": f"Bearer {token}"})
    if not refreshed:
        assert response.status_code == 401
        return
    assert response.status_code == 200
    limit = signed_in + settings.session_max_hours * 3600
    assert _claims(response.json()["access_token"])["exp"] <= limit
    assert response.json()["expires_in"] <= limit - now


def test_missing_token_is_401(client: TestClient, tree: Tree) -> None:
    response = client.get("/v1/members")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged_tokens(settings: Settings, officer_id: int) -> dict[str, str]:
    key = settings.derived_key("officer-token")
    now = int(time.time())
    good = {"sub": str(officer_id), "iss": "cardsvc", "aud": "cardsvc-officers", "iat": now, "exp": now + 600,
            "jti": "x", "auth_time": now, "sep": 0}
    valid = jwt.encode(good, key, algorithm="HS256")
    header, payload, signature = valid.split(".")
    tampered_payload = _b64({**good, "sub": str(officer_id + 1)})
    return {
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong_key": jwt.encode(good, b"k" * 32, algorithm="HS256"),
        "hs512_same_key": jwt.encode(good, key, algorithm="HS512"),
        "expired": jwt.encode({**good, "iat": now - 7200, "exp": now - 3600}, key, algorithm="HS256"),
        "wrong_audience": jwt.encode({**good, "aud": "someone-else"}, key, algorithm="HS256"),
        "wrong_issuer": jwt.encode({**good, "iss": "evil"}, key, algorithm="HS256"),
        "missing_exp": jwt.encode({k: v for k, v in good.items() if k != "exp"}, key, algorithm="HS256"),
        "missing_auth_time": jwt.encode({k: v for k, v in good.items() if k != "auth_time"}, key, algorithm="HS256"),
        "old_epoch": jwt.encode({**good, "sep": -1}, key, algorithm="HS256"),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "garbage": "not.a.token",
        "huge": "a" * 5000,
    }


@pytest.mark.parametrize("attack", ["alg_none", "wrong_key", "hs512_same_key", "expired", "wrong_audience",
                                    "wrong_issuer", "missing_exp", "missing_auth_time", "old_epoch",
                                    "tampered", "garbage", "huge"])
def test_forged_tokens_are_refused(client: TestClient, tree: Tree, settings: Settings, attack: str) -> None:
    token = _forged_tokens(settings, tree.officers["t.officer.a"].id)[attack]
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, attack
    assert response.json()["code"] == "invalid_token"


def test_token_lifetime_comes_from_settings(settings: Settings) -> None:
    tokens = OfficerTokens.from_settings(settings)
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    assert tokens.issue(7, epoch=0, auth_time=issued, now=issued).expires_at - issued \
        == timedelta(minutes=settings.access_token_minutes)
    late = issued + timedelta(hours=settings.session_max_hours, minutes=-1)
    assert tokens.issue(7, epoch=0, auth_time=issued, now=late).expires_at \
        == issued + timedelta(hours=settings.session_max_hours)


def test_password_change(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.commune")
    wrong = client.post("/v1/me/password", json={"current_password": "bad", "new_password": "a new long password"},
                        headers=headers)
    assert wrong.status_code == 401
    weak = client.post("/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"},
                       headers=headers)
    assert weak.status_code == 422
    ok = client.post("/v1/me/password", json={"current_password": PASSWORD, "new_password": "a new long password"},
                     headers=headers)
    assert ok.status_code == 204
    login(client, "t.officer.commune", "a new long password")
