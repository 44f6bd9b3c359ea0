"""Officer login, lockout, tokens and their attacks."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry
from cardsvc.security import OfficerTokens
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
    assert response.json()["message"] == "wrong username or password"


def test_lockout_after_repeated_failures(client: TestClient, tree: Tree, db: Session) -> None:
    for _ in range(5):
        assert client.post("/v1/auth/token", data={"username": "t.viewer.a", "password": "nope"}).status_code == 401
    locked = client.post("/v1/auth/token", data={"username": "t.viewer.a", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    failures = db.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_failed")).all()
    assert len(failures) == 5


def test_lockout_grows_with_further_failures(client: TestClient, tree: Tree, db: Session) -> None:
    officer = tree.officers["t.viewer.a"]
    for expected in (60, 120):
        officer.failed_logins = 4 if expected == 60 else 5
        officer.locked_until = None
        db.commit()
        client.post("/v1/auth/token", data={"username": "t.viewer.a", "password": "nope"})
        db.refresh(officer)
        assert officer.locked_until is not None
        remaining = (officer.locked_until - datetime.now(UTC)).total_seconds()
        assert expected - 5 < remaining <= expected


def test_disabled_officer_cannot_use_an_old_token(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.b")
    admin = login(client, "t.admin")
    officer_id = tree.officers["t.officer.b"].id
    assert client.post(f"/v1/officers/{officer_id}/active", json={"is_active": False}, headers=admin).status_code == 200
    assert client.get("/v1/me", headers=headers).status_code == 401
    assert client.post("/v1/auth/token", data={"username": "t.officer.b", "password": PASSWORD}).status_code == 401


def test_refresh_issues_a_new_token(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    response = client.post("/v1/auth/refresh", headers=headers)
    assert response.status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}).status_code \
        == 200


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
            "jti": "x"}
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
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "garbage": "not.a.token",
        "huge": "a" * 5000,
    }


@pytest.mark.parametrize("attack", ["alg_none", "wrong_key", "hs512_same_key", "expired", "wrong_audience",
                                    "wrong_issuer", "missing_exp", "tampered", "garbage", "huge"])
def test_forged_tokens_are_refused(client: TestClient, tree: Tree, settings: Settings, attack: str) -> None:
    token = _forged_tokens(settings, tree.officers["t.officer.a"].id)[attack]
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, attack
    assert response.json()["code"] == "invalid_token"


def test_token_lifetime_comes_from_settings(settings: Settings) -> None:
    tokens = OfficerTokens.from_settings(settings)
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    assert tokens.issue(7, issued).expires_at - issued == timedelta(minutes=settings.access_token_minutes)


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
