"""Bad input gets a 4xx with {code, message, details} naming what is wrong — never a 500, nothing half-written."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, Member
from tests.conftest import Tree, login


def _assert_error(response: object, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"code", "message", "details"}
    if code:
        assert body["code"] == code
    return body


def test_malformed_json(client: TestClient, tree: Tree) -> None:
    response = client.post("/v1/members", content=b'{"full_name": "Lan",', headers={
        **login(client, "t.officer.a"), "Content-Type": "application/json"})
    _assert_error(response, 400, "malformed_json")


def test_unknown_fields_and_wrong_types(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    unknown = client.post("/v1/chapters", json={"code": "X", "name": "X", "level": "branch", "parent_id": 1,
                                                "is_admin": True}, headers=headers)
    body = _assert_error(unknown, 422, "validation_failed")
    assert any(d["field"] == "is_admin" for d in body["details"])  # type: ignore[attr-defined, index]
    wrong = client.post("/v1/chapters", json={"code": "X", "name": "X", "level": "branch", "parent_id": "abc"},
                        headers=headers)
    body = _assert_error(wrong, 422, "validation_failed")
    assert any(d["field"] == "parent_id" for d in body["details"])  # type: ignore[attr-defined, index]


def test_oversized_body_by_declared_length(client: TestClient, tree: Tree) -> None:
    response = client.post("/v1/members", content=b"{" + b" " * 1_100_000 + b"}", headers={
        **login(client, "t.officer.a"), "Content-Type": "application/json"})
    _assert_error(response, 413, "payload_too_large")


def test_oversized_body_without_length(client: TestClient, tree: Tree) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"full_name": "'
        for _ in range(200):
            yield b"a" * 10_000
        yield b'"}'

    response = client.post("/v1/members", content=chunks(), headers={
        **login(client, "t.officer.a"), "Content-Type": "application/json"})
    _assert_error(response, 413, "payload_too_large")


def test_overlong_strings_are_refused(client: TestClient, tree: Tree) -> None:
    response = client.get("/v1/members", params={"q": "a" * 500}, headers=login(client, "t.officer.a"))
    _assert_error(response, 422)


def test_unknown_route_and_method(client: TestClient) -> None:
    _assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    _assert_error(client.delete("/v1/me"), 405, "method_not_allowed")


def test_bad_path_parameter(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    # A path that names no possible member (not a positive 64-bit number) is not found, like a missing one.
    _assert_error(client.get("/v1/members/abc", headers=headers), 404, "not_found")
    _assert_error(client.get("/v1/members/99999999", headers=headers), 404, "not_found")


def test_a_failed_create_writes_nothing(client: TestClient, tree: Tree, db: Session) -> None:
    before = (db.scalar(select(func.count()).select_from(Member)), db.scalar(select(func.count()).select_from(
        AuditEntry)))
    response = client.post("/v1/members", json={"chapter_id": tree.branch_a.id, "full_name": "Lan",
                                                "birth_date": "01/01/1990", "id_number": "001190000001",
                                                "phone": "12"}, headers=login(client, "t.officer.a"))
    _assert_error(response, 422)
    db.expire_all()
    after = (db.scalar(select(func.count()).select_from(Member)), db.scalar(select(func.count()).select_from(
        AuditEntry)))
    assert after[0] == before[0]
    assert after[1] == before[1] + 1  # only the login


@pytest.fixture
def officer_headers(client: TestClient, tree: Tree) -> dict[str, str]:
    return login(client, "t.officer.a")


text = st.text(max_size=60)
member_bodies = st.fixed_dictionaries(
    {},
    optional={
        "chapter_id": st.one_of(st.integers(-5, 10**12), text),
        "full_name": st.one_of(text, st.sampled_from(["'; DROP TABLE members; --", "<script>x</script>",
                                                      "Nguyễn\u0000Lan", "Ｎｇｕｙễｎ"])),
        "birth_date": st.one_of(text, st.sampled_from(["1990", "29/02/1991", "00/00/0000", "45292", "1e10"])),
        "gender": st.one_of(text, st.none()),
        "id_number": st.one_of(text, st.from_regex(r"\d{12}", fullmatch=True)),
        "phone": st.one_of(text, st.integers()),
        "honorary": st.one_of(st.booleans(), text),
        "unexpected": text,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=member_bodies)
def test_random_member_bodies_never_500(client: TestClient, officer_headers: dict[str, str],
                                        body: dict[str, object]) -> None:
    response = client.post("/v1/members", json=body, headers=officer_headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "details"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=100))
def test_random_search_queries_never_500(client: TestClient, officer_headers: dict[str, str], query: str) -> None:
    response = client.get("/v1/members", params={"q": query}, headers=officer_headers)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 400:
        assert "\x00" in query and response.json()["code"] == "invalid_characters"


def test_nul_characters_are_refused(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    _assert_error(client.get("/v1/members", params={"q": "lan\x00"}, headers=headers), 400, "invalid_characters")
    body = {"code": "X9", "name": "Chi\x00hội", "level": "branch", "parent_id": tree.commune_a.id}
    _assert_error(client.post("/v1/chapters", json=body, headers=headers), 422, "validation_failed")


def test_security_headers_and_request_id(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert len(response.headers["X-Request-ID"]) == 16


def test_readiness_reports_missing_keys(client: TestClient, tree: Tree) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["problems"]) == {"no active trust key", "no active card key"}


@pytest.mark.usefixtures("signing_keys")
def test_ready_with_keys(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "problems": []}
