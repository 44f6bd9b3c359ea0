"""Authorization matrix: every API route × role × in-scope / out-of-scope target, generated from the route table.

A new route fails ``test_every_route_is_in_the_matrix`` until it is described here, so none can be forgotten.
A route that takes ids of other objects in its body as well as in its path is also tried with the path's objects in
the caller's scope and the body's outside it (``foreign``): the body's ids are checked like the path's.

The matrix holds some 800 cases. The chapters, officers, keys and the targets of both provinces (:class:`World`) are
made once for the module, inside a transaction of its own connection; every case runs inside a savepoint of that
connection and is rolled back to the same world, as if it had made the world itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from cardsvc.db.models import (
    Card,
    Chapter,
    Consent,
    Event,
    IdentityReview,
    IdentitySyncRun,
    Job,
    Member,
    NfcWriteRequest,
    Officer,
    SigningKey,
    Station,
)
from cardsvc.security import PiiCipher
from cardsvc.services import cards, consents, events, jobs, members, nfc_writes, stations
from cardsvc.services.identity import sync as identity_sync
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from integrations.population import StubRegistry
from issuance.credential import credential_qr_text
from tests.conftest import (
    PASSWORD,
    SYSTEM,
    Tree,
    _session_for,
    build_tree,
    id_number_for,
    login,
    make_member,
    make_signing_keys,
)

# ``device``: for a station's device token only (officers get 401, like any caller without a device token).
Kind = Literal["self", "read", "write", "admin", "device"]


@dataclass
class Targets:
    province: Chapter
    commune: Chapter
    branch: Chapter
    member: Member
    consent: Consent
    officer: Officer
    card: Card
    suspended_card: Card
    job: Job
    card_kid: str
    event: Event
    invite_event: Event
    station: Station
    sync_run: IdentitySyncRun
    review: IdentityReview
    left_member: Member | None = None
    nfc_write: NfcWriteRequest | None = None
    # The device token of ``station`` (set up in ``_targets``).
    station_token: str = ""


Request = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Case:
    kind: Kind
    build: Callable[[Targets], Request]
    # What an allowed caller gets when the request itself conflicts with the state (e.g. a key already exists).
    allowed_status: int | None = None
    # Needs the pii permission, which only the admin of the roles tested holds: others in scope get 403.
    needs_pii: bool = False
    # The request a station sends instead (for the routes a device token may use).
    device_body: Callable[[Targets], dict[str, Any]] | None = None
    # What a device of another event's station gets on a device route (403 for routes naming an event).
    device_elsewhere: int | str = 403
    # The request with the path's objects from the first targets and the body's ids from the second.
    foreign: Callable[[Targets, Targets], Request] | None = None


def _csv(t: Targets) -> bytes:
    birth = date(1988, 2, 3)
    return ("Họ và tên,Ngày sinh,Số CCCD\nTrần Thị Mai,03/02/1988," + id_number_for(birth) + "\n").encode()


def _member_body(t: Targets) -> dict[str, Any]:
    birth = date(1991, 6, 7)
    return {"chapter_id": t.branch.id, "full_name": "Võ Thị Hạnh", "birth_date": "07/06/1991",
            "id_number": id_number_for(birth)}


MATRIX: dict[tuple[str, str], Case] = {
    ("POST", "/v1/auth/refresh"): Case("self", lambda t: ("/v1/auth/refresh", {})),
    ("GET", "/v1/me"): Case("self", lambda t: ("/v1/me", {})),
    ("POST", "/v1/me/password"): Case("self", lambda t: (
        "/v1/me/password", {"json": {"current_password": PASSWORD, "new_password": PASSWORD}})),
    ("POST", "/v1/me/sign-out-everywhere"): Case("self", lambda t: ("/v1/me/sign-out-everywhere", {})),
    ("GET", "/v1/chapter-levels"): Case("self", lambda t: ("/v1/chapter-levels", {})),
    ("GET", "/v1/chapters"): Case("read", lambda t: (f"/v1/chapters?parent_id={t.commune.id}", {})),
    ("GET", "/v1/chapters/by-code/{code}"): Case("read", lambda t: (f"/v1/chapters/by-code/{t.branch.code}", {})),
    ("POST", "/v1/chapters"): Case("write", lambda t: ("/v1/chapters", {"json": {
        "code": f"{t.commune.code}-NEW", "name": "Chi hội mới", "level": "branch", "parent_id": t.commune.id}})),
    ("GET", "/v1/chapters/{chapter_id}"): Case("read", lambda t: (f"/v1/chapters/{t.branch.id}", {})),
    ("PATCH", "/v1/chapters/{chapter_id}"): Case("write", lambda t: (
        f"/v1/chapters/{t.branch.id}", {"json": {"name": "Tên mới"}})),
    ("POST", "/v1/chapters/{chapter_id}/move"): Case("write", lambda t: (
        f"/v1/chapters/{t.branch.id}/move", {"json": {"parent_id": t.province.id}}), foreign=lambda t, o: (
        f"/v1/chapters/{t.branch.id}/move", {"json": {"parent_id": o.province.id}})),
    ("POST", "/v1/chapters/{chapter_id}/merge"): Case("write", lambda t: (
        f"/v1/chapters/{t.branch.id}/merge", {"json": {"into_id": t.commune.id}}), foreign=lambda t, o: (
        f"/v1/chapters/{t.branch.id}/merge", {"json": {"into_id": o.commune.id}})),
    ("GET", "/v1/members"): Case("read", lambda t: (f"/v1/members?chapter_id={t.branch.id}", {})),
    ("POST", "/v1/members/lookup"): Case("self", lambda t: ("/v1/members/lookup", {"json": {
        "id_number": "001190000000"}})),
    ("POST", "/v1/members"): Case("write", lambda t: ("/v1/members", {"json": _member_body(t)})),
    ("POST", "/v1/members/import"): Case("write", lambda t: ("/v1/members/import", {
        "files": {"file": ("list.csv", _csv(t), "text/csv")},
        "data": {"chapter_code": t.branch.code, "dry_run": "false"}})),
    # A kept upload is only ever its uploader's: any other caller's token is unknown (404), whatever the role.
    ("GET", "/v1/members/import/errors/{token}"): Case("self", lambda t: (
        "/v1/members/import/errors/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", {}), allowed_status=404),
    ("GET", "/v1/members/{member_id}"): Case("read", lambda t: (f"/v1/members/{t.member.id}", {})),
    ("PATCH", "/v1/members/{member_id}"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}", {"json": {"phone": "0987654321"}}), foreign=lambda t, o: (
        f"/v1/members/{t.member.id}", {"json": {"chapter_id": o.branch.id}})),
    ("GET", "/v1/members/duplicates"): Case("read", lambda t: (f"/v1/members/duplicates?chapter_id={t.branch.id}", {})),
    # Both members hold a CCCD number: the merge itself is refused (409) for everyone allowed to try it.
    ("POST", "/v1/members/{member_id}/merge"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/merge", {"json": {"duplicate_id": t.left_member.id if t.left_member else 0}}),
        allowed_status=409),
    ("POST", "/v1/members/{member_id}/status"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/status", {"json": {"status": "suspended", "reason": "tạm dừng"}})),
    ("GET", "/v1/members/{member_id}/status-history"): Case("read", lambda t: (
        f"/v1/members/{t.member.id}/status-history", {})),
    ("GET", "/v1/members/{member_id}/consents"): Case("read", lambda t: (f"/v1/members/{t.member.id}/consents", {})),
    ("POST", "/v1/members/{member_id}/consents"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/consents", {"json": {"purpose": "registry_publication", "method": "app"}})),
    ("POST", "/v1/members/{member_id}/consents/{consent_id}/withdraw"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/consents/{t.consent.id}/withdraw", {"json": {}})),
    ("GET", "/v1/officers"): Case("self", lambda t: ("/v1/officers", {})),
    ("POST", "/v1/officers"): Case("admin", lambda t: ("/v1/officers", {"json": {
        "username": "new.officer", "password": "a long enough password", "role": "officer",
        "chapter_id": t.commune.id}})),
    ("GET", "/v1/officers/{officer_id}"): Case("read", lambda t: (f"/v1/officers/{t.officer.id}", {})),
    ("POST", "/v1/officers/{officer_id}/active"): Case("admin", lambda t: (
        f"/v1/officers/{t.officer.id}/active", {"json": {"is_active": False}})),
    ("POST", "/v1/officers/{officer_id}/sign-out-everywhere"): Case("admin", lambda t: (
        f"/v1/officers/{t.officer.id}/sign-out-everywhere", {})),
    ("GET", "/v1/audit"): Case("self", lambda t: ("/v1/audit", {})),
    ("POST", "/v1/members/{member_id}/cards"): Case("write", lambda t: (f"/v1/members/{t.member.id}/cards",
                                                                       {"json": {}})),
    ("GET", "/v1/members/{member_id}/cards"): Case("read", lambda t: (f"/v1/members/{t.member.id}/cards", {})),
    ("GET", "/v1/cards/{card_id}"): Case("read", lambda t: (f"/v1/cards/{t.card.card_id}", {})),
    ("GET", "/v1/cards/{card_id}/credential"): Case("read", lambda t: (f"/v1/cards/{t.card.card_id}/credential",
                                                                       {})),
    ("GET", "/v1/cards/{card_id}/qr.png"): Case("read", lambda t: (f"/v1/cards/{t.card.card_id}/qr.png", {})),
    ("GET", "/v1/cards/{card_id}/qr.svg"): Case("read", lambda t: (f"/v1/cards/{t.card.card_id}/qr.svg", {})),
    ("GET", "/v1/cards/{card_id}/card.pdf"): Case("read", lambda t: (f"/v1/cards/{t.card.card_id}/card.pdf", {})),
    ("POST", "/v1/cards/{card_id}/suspend"): Case("write", lambda t: (f"/v1/cards/{t.card.card_id}/suspend",
                                                                      {"json": {}})),
    ("POST", "/v1/cards/{card_id}/reinstate"): Case("write", lambda t: (
        f"/v1/cards/{t.suspended_card.card_id}/reinstate", {"json": {}})),
    ("POST", "/v1/cards/{card_id}/revoke"): Case("write", lambda t: (f"/v1/cards/{t.card.card_id}/revoke",
                                                                     {"json": {"reason": "lost"}})),
    ("POST", "/v1/cards/{card_id}/renew"): Case("write", lambda t: (f"/v1/cards/{t.card.card_id}/renew", {})),
    ("POST", "/v1/chapters/{chapter_id}/cards/batch"): Case("write", lambda t: (
        f"/v1/chapters/{t.commune.id}/cards/batch", {"json": {"subtree": True}})),
    ("GET", "/v1/jobs/{job_id}"): Case("read", lambda t: (f"/v1/jobs/{t.job.id}", {})),
    ("GET", "/v1/jobs/{job_id}/sheets.pdf"): Case("read", lambda t: (f"/v1/jobs/{t.job.id}/sheets.pdf", {})),
    ("GET", "/v1/keys"): Case("admin", lambda t: ("/v1/keys", {})),
    ("POST", "/v1/keys"): Case("admin", lambda t: ("/v1/keys", {"json": {"purpose": "card"}}), allowed_status=409),
    ("POST", "/v1/keys/rotate"): Case("admin", lambda t: ("/v1/keys/rotate", {"json": {"algorithm": "es256"}})),
    ("POST", "/v1/keys/{kid}/retire"): Case("admin", lambda t: (f"/v1/keys/{t.card_kid}/retire", {"json": {}})),
}
MATRIX.update({
    ("GET", "/v1/events"): Case("read", lambda t: (f"/v1/events?chapter_id={t.commune.id}", {})),
    ("POST", "/v1/events"): Case("write", lambda t: ("/v1/events", {"json": {
        "chapter_id": t.commune.id, "title": "Sinh hoạt chi hội", "starts_at": "2026-12-01T08:00:00+07:00",
        "ends_at": "2026-12-01T11:00:00+07:00"}})),
    ("GET", "/v1/events/{event_id}"): Case("read", lambda t: (f"/v1/events/{t.event.id}", {})),
    ("POST", "/v1/events/{event_id}/close"): Case("write", lambda t: (f"/v1/events/{t.event.id}/close", {})),
    ("POST", "/v1/events/{event_id}/invites"): Case("write", lambda t: (
        f"/v1/events/{t.invite_event.id}/invites", {"json": {"member_ids": [t.member.id]}}),
        # The administrator too: an invitee must lie in the event's scope (its chapter's subtree).
        foreign=lambda t, o: (f"/v1/events/{t.invite_event.id}/invites", {"json": {"member_ids": [o.member.id]}})),
    ("POST", "/v1/events/{event_id}/stations"): Case("write", lambda t: (
        f"/v1/events/{t.event.id}/stations", {"json": {"name": "Cửa 2"}})),
    ("GET", "/v1/events/{event_id}/stations"): Case("read", lambda t: (f"/v1/events/{t.event.id}/stations", {})),
    ("POST", "/v1/events/{event_id}/stations/{station_id}/revoke"): Case("write", lambda t: (
        f"/v1/events/{t.event.id}/stations/{t.station.id}/revoke", {})),
    ("POST", "/v1/events/{event_id}/checkins"): Case("write", lambda t: (f"/v1/events/{t.event.id}/checkins", {
        "json": {"source": "manual", "client_nonce": "matrix-manual-1", "member_id": t.member.id,
                 "manual_reason": "quên thẻ"}}), device_body=lambda t: {"json": {
        "source": "qr_scanner", "client_nonce": "matrix-scan-1", "payload": credential_qr_text(t.card.credential)}},
        foreign=lambda t, o: (f"/v1/events/{t.event.id}/checkins", {"json": {
            "source": "manual", "client_nonce": "matrix-manual-2", "member_id": o.member.id,
            "manual_reason": "quên thẻ"}})),
    ("GET", "/v1/events/{event_id}/bundle"): Case("read", lambda t: (f"/v1/events/{t.event.id}/bundle", {})),
    ("GET", "/v1/events/{event_id}/stats"): Case("read", lambda t: (f"/v1/events/{t.event.id}/stats", {})),
    ("GET", "/v1/events/{event_id}/attendance"): Case("read", lambda t: (
        f"/v1/events/{t.event.id}/attendance?format=xlsx", {})),
    ("GET", "/v1/events/{event_id}/denied"): Case("read", lambda t: (f"/v1/events/{t.event.id}/denied?format=csv",
                                                                      {})),
})
MATRIX.update({
    ("POST", "/v1/identity/sync-runs"): Case("write", lambda t: (
        "/v1/identity/sync-runs", {"json": {"chapter_id": t.commune.id}})),
    ("GET", "/v1/identity/sync-runs/{run_id}"): Case("read", lambda t: (f"/v1/identity/sync-runs/{t.sync_run.id}", {})),
    ("GET", "/v1/identity/reviews"): Case("read", lambda t: (f"/v1/identity/reviews?chapter_id={t.commune.id}", {})),
    ("POST", "/v1/identity/reviews/{review_id}/decision"): Case("write", lambda t: (
        f"/v1/identity/reviews/{t.review.id}/decision", {"json": {"decision": "flag", "note": "xem lại giấy tờ"}})),
    ("GET", "/v1/identity/coverage"): Case("read", lambda t: (f"/v1/identity/coverage?chapter_id={t.commune.id}", {})),
    ("POST", "/v1/identity/publish"): Case("write", lambda t: (
        "/v1/identity/publish", {"json": {"chapter_id": t.commune.id}})),
})
MATRIX.update({
    ("POST", "/v1/members/{member_id}/links"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/links", {"json": {"channel": "paper"}})),
    ("GET", "/v1/members/{member_id}/links"): Case("read", lambda t: (f"/v1/members/{t.member.id}/links", {})),
    ("POST", "/v1/members/{member_id}/links/revoke"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/links/revoke", {})),
    ("POST", "/v1/members/{member_id}/binding-code"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/binding-code", {})),
    ("POST", "/v1/members/{member_id}/binding/deactivate"): Case("write", lambda t: (
        f"/v1/members/{t.member.id}/binding/deactivate", {})),
})
MATRIX.update({
    ("GET", "/v1/members/{member_id}/export"): Case("read", lambda t: (f"/v1/members/{t.member.id}/export", {}),
                                                   needs_pii=True),
    ("POST", "/v1/members/{member_id}/erase"): Case("write", lambda t: (
        f"/v1/members/{t.left_member.id if t.left_member else 0}/erase", {})),
})
MATRIX.update({
    ("GET", "/v1/events/{event_id}/conflicts"): Case("read", lambda t: (
        f"/v1/events/{t.event.id}/conflicts?format=csv", {})),
    ("POST", "/v1/events/{event_id}/stations/{station_id}/nfc-writes"): Case("write", lambda t: (
        f"/v1/events/{t.event.id}/stations/{t.station.id}/nfc-writes", {"json": {"card_id": t.card.card_id}}),
        foreign=lambda t, o: (f"/v1/events/{t.event.id}/stations/{t.station.id}/nfc-writes",
                              {"json": {"card_id": o.card.card_id}})),
    ("GET", "/v1/events/{event_id}/stations/{station_id}/nfc-writes"): Case("read", lambda t: (
        f"/v1/events/{t.event.id}/stations/{t.station.id}/nfc-writes", {})),
    # A station sees only its own requests: another station's device lists nothing and cannot report on them.
    ("GET", "/v1/devices/nfc-writes"): Case("device", lambda t: ("/v1/devices/nfc-writes", {}),
                                            device_elsewhere="2xx"),
    ("POST", "/v1/devices/nfc-writes/{request_id}/result"): Case("device", lambda t: (
        f"/v1/devices/nfc-writes/{t.nfc_write.id if t.nfc_write else 0}/result",
        {"json": {"ok": True, "uid": "04a1b2c3d4e5f6"}}), device_elsewhere=404),
})
# What a station's device token may do: check in, download its own event's bundle, and take and report the NFC
# writes handed to it; nothing else.
DEVICE_ROUTES = {("POST", "/v1/events/{event_id}/checkins"), ("GET", "/v1/events/{event_id}/bundle"),
                 ("GET", "/v1/devices/nfc-writes"), ("POST", "/v1/devices/nfc-writes/{request_id}/result")}
PUBLIC = {
    ("POST", "/v1/auth/token"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/cardsvc-trust-anchor.json"), ("GET", "/.well-known/cardsvc-trust-bundle"),
    ("GET", "/v1/status-lists/{list_id}"), ("POST", "/v1/devices/provision"),
    # The member's card page data: the link's random token is the credential (tests/server/test_member_links.py).
    ("GET", "/m/{token}/card.json"),
    # Live cards: the link is the member's, binding also needs the officer's one-time code
    # (tests/server/test_bindings.py).
    ("GET", "/m/{token}/binding"), ("POST", "/m/{token}/binding"), ("DELETE", "/m/{token}/binding"),
    # Apple's PassKit web service: a request about a pass bears the pass's own token (tests/wallet/test_wallet.py).
    ("POST", "/wallet/apple/v1/devices/{device}/registrations/{pass_type}/{serial}"),
    ("DELETE", "/wallet/apple/v1/devices/{device}/registrations/{pass_type}/{serial}"),
    ("GET", "/wallet/apple/v1/devices/{device}/registrations/{pass_type}"),
    ("GET", "/wallet/apple/v1/passes/{pass_type}/{serial}"), ("POST", "/wallet/apple/v1/log"),
}
ROLES = ("admin", "officer_a", "viewer_a", "device_a", "anonymous")
USERS = {"admin": "t.admin", "officer_a": "t.officer.a", "viewer_a": "t.viewer.a"}


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the application serves, from its OpenAPI route table."""
    return {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    assert _routes(app) - PUBLIC == set(MATRIX)


def expected_status(case: Case, role: str, in_scope: bool, route: tuple[str, str]) -> int | str:
    kind = case.kind
    allowed: int | str = case.allowed_status or "2xx"
    if role == "anonymous":
        return 401
    if role == "device_a":
        if route not in DEVICE_ROUTES:
            return 401
        return "2xx" if in_scope else case.device_elsewhere
    if kind == "device":
        return 401
    if role == "admin" or kind == "self":
        return allowed
    if kind == "admin":
        return 403
    if kind == "write" and role == "viewer_a":
        return 403
    if case.needs_pii and in_scope:
        return 403
    return allowed if in_scope else 404


def _device_headers(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher, targets: Targets | None
                    ) -> dict[str, str]:
    """A device token of a station of province A's event (the scope-A targets' own station when given)."""
    if targets is not None:
        return {"Authorization": f"Bearer {targets.station_token}"}
    now = datetime.now(UTC)
    event = events.create_event(db, SYSTEM, events.EventSpec(
        chapter_id=tree.commune_a.id, title="Sự kiện A", venue="", starts_at=now, ends_at=now + timedelta(hours=2)))
    code = stations.register_station(db, SYSTEM, event.id, "Thiết bị").provisioning_code
    token = client.post("/v1/devices/provision", json={"code": code}).json()["device_token"]
    return {"Authorization": f"Bearer {token}"}


def _targets(db: Session, cipher: PiiCipher, tree: Tree, scope: str, keyring: KeyRing,
             signing_keys: dict[str, SigningKey]) -> Targets:
    province, commune, branch = (
        (tree.prov_a, tree.commune_a, tree.branch_a) if scope == "a" else (tree.prov_b, tree.commune_b, tree.branch_b)
    )
    member = make_member(db, cipher, branch)
    consent = consents.record_consent(db, SYSTEM, member.id, purpose="identity_verification", method="paper_form",
                                      evidence_ref=None)
    officer = tree.officers["t.officer.commune" if scope == "a" else "t.officer.b"]
    issue = {"validity_years": 5, "list_size": 4096}
    card = cards.issue_card(db, SYSTEM, keyring, member.id, **issue)
    suspended = cards.issue_card(db, SYSTEM, keyring, make_member(db, cipher, branch).id, **issue)
    cards.suspend_card(db, SYSTEM, suspended.card_id, note=None)
    make_member(db, cipher, commune)
    job = jobs.start_batch(db, SYSTEM, commune.id, subtree=False)
    jobs.run_batch(lambda: _session_for(db.connection()), keyring, job.id, **issue)
    now = datetime.now(UTC)
    spec = {"chapter_id": commune.id, "title": "Sinh hoạt", "venue": "Nhà văn hóa", "starts_at": now,
            "ends_at": now + timedelta(hours=3)}
    event = events.create_event(db, SYSTEM, events.EventSpec(**spec))  # type: ignore[arg-type]
    invite_event = events.create_event(db, SYSTEM, events.EventSpec(**spec, eligibility="invite"))  # type: ignore[arg-type]
    station = stations.register_station(db, SYSTEM, event.id, "Cửa 1")
    station_token = stations.provision(db, station.provisioning_code).device_token
    nfc_write = nfc_writes.request_write(db, SYSTEM, event.id, station.station.id, card.card_id, lock=False)
    sync_run = identity_sync.start_sync(db, SYSTEM, chapter_id=commune.id, force=False, reverify_days=180)
    review = IdentityReview(member_id=member.id, source="sync", kind="mismatch", differing_fields=["full_name"],
                            registry_values={}, status="open")
    db.add(review)
    db.flush()
    left_member = make_member(db, cipher, branch)
    members.change_status(db, SYSTEM, left_member.id, status="left", reason="chuyển đi", effective_on=None)
    return Targets(province, commune, branch, member, consent, officer, card, suspended, job,
                   signing_keys["card"].kid, event, invite_event, station.station, sync_run, review, left_member,
                   nfc_write, station_token)


@dataclass
class World:
    """What every case starts from: the tree, the keys, and the targets of province A (``a``) and B (``b``)."""

    session: Session
    tree: Tree
    signing_keys: dict[str, SigningKey]
    targets: dict[str, Targets]


@pytest.fixture(scope="module")
def _module_connection(engine: Engine) -> Iterator[Connection]:
    """The module's connection, in a transaction rolled back after the last case."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture(scope="module")
def world(_module_connection: Connection, app: FastAPI, settings: Settings, cipher: PiiCipher) -> Iterator[World]:
    session = _session_for(_module_connection)
    tree = build_tree(session)
    keys = make_signing_keys(session, settings)
    targets = {scope: _targets(session, cipher, tree, scope, app.state.keyring, keys) for scope in ("a", "b")}
    yield World(session, tree, keys, targets)
    session.close()


@pytest.fixture
def connection(_module_connection: Connection, world: World) -> Iterator[Connection]:
    """Overrides tests/conftest.py's: the case runs in a savepoint of the module's connection, rolled back after."""
    savepoint = _module_connection.begin_nested()
    yield _module_connection
    # A case that ended this savepoint would leave its changes to the next one.
    assert savepoint.is_active, "the case ended the savepoint that restores the world"
    savepoint.rollback()


@pytest.fixture
def tree(world: World) -> Tree:
    return world.tree


@pytest.fixture
def signing_keys(world: World) -> dict[str, SigningKey]:
    return world.signing_keys


@pytest.fixture(autouse=True)
def _registry_stub(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity routes call the registry: an in-process stub that knows nobody (answers: not found)."""
    # setitem on the state's dict: pytest's setattr undo would delete State attributes (they are not in __dict__).
    monkeypatch.setitem(app.state._state, "registry", StubRegistry(synthetic=0))


@pytest.mark.parametrize("scope", ["a", "b"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_access(client: TestClient, world: World, db: Session, cipher: PiiCipher, route: tuple[str, str], role: str,
                scope: str) -> None:
    case = MATRIX[route]
    targets = world.targets[scope]
    url, kwargs = case.build(targets)
    if role in USERS:
        headers = login(client, USERS[role])
    elif role == "device_a":
        headers = _device_headers(client, db, world.tree, cipher, targets if scope == "a" else None)
        if case.device_body is not None:
            kwargs = case.device_body(targets)
    else:
        headers = {}
    response = client.request(route[0], url, headers=headers, **kwargs)
    expected = expected_status(case, role, in_scope=scope == "a", route=route)
    if expected == "2xx":
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == expected, response.text
        assert set(response.json()) == {"code", "message", "details"}


# What an administrator gets when the body's ids lie outside the path object's own reach (not her scope).
FOREIGN_ADMIN = {("POST", "/v1/events/{event_id}/invites"): 404}


def expected_with_foreign_ids(case: Case, role: str, route: tuple[str, str]) -> int | str:
    """The path's objects are in the caller's scope, the body's ids are not: they count as missing."""
    if role == "anonymous":
        return 401
    if role == "admin":
        return FOREIGN_ADMIN.get(route, case.allowed_status or "2xx")
    if case.kind == "write" and role == "viewer_a":
        return 403
    return 404


@pytest.mark.parametrize("role", ("admin", "officer_a", "viewer_a", "anonymous"))
@pytest.mark.parametrize("route", sorted(r for r, case in MATRIX.items() if case.foreign),
                         ids=lambda r: f"{r[0]} {r[1]}")
def test_access_with_body_ids_out_of_scope(client: TestClient, world: World, route: tuple[str, str], role: str
                                           ) -> None:
    case = MATRIX[route]
    assert case.foreign is not None
    own, other = world.targets["a"], world.targets["b"]
    url, kwargs = case.foreign(own, other)
    headers = login(client, USERS[role]) if role in USERS else {}
    response = client.request(route[0], url, headers=headers, **kwargs)
    expected = expected_with_foreign_ids(case, role, route)
    if expected == "2xx":
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == expected, response.text
        assert set(response.json()) == {"code", "message", "details"}
