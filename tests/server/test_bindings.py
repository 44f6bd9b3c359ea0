"""Live cards on the server (docs/card-format.md §8): the officer's one-time code, binding a phone through the
member's link, one phone per card, de-activation by the member and by an officer, the binding's status following
the card, status lists and event bundles that carry it, and each event's live-code policy at check-in."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, BindingCode, CardBinding, Member
from cardsvc.security import PiiCipher
from cardsvc.services import cards, member_links
from cardsvc.services.bindings import MAX_CODE_ATTEMPTS
from cardsvc.services.publication import status_list_uri
from issuance.binding import holder_key_of, live_qr_text
from issuance.keys import PrivateKey
from station.loop import decide_offline
from tests.conftest import SYSTEM, Tree, login, make_member
from tests.server.test_admin_pages_http import page_login
from tests.server.test_checkins import Door, issue, make_door, make_event, nonce, scan, verdict
from verification.crypto import key_from_jwk
from verification.event_bundle import verify_event_bundle
from verification.format import parse_bound_credential, to_qr_text
from verification.live import LIVE_STEP_SECONDS, time_step_at
from verification.status import STATUS_SUPERSEDED, verify_status_list
from verification.trust import TrustAnchor

pytestmark = pytest.mark.usefixtures("signing_keys")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk_of(device: PrivateKey) -> dict[str, str]:
    """The public JWK a phone's page sends (WebCrypto's export of the public key)."""
    public = holder_key_of(device).public
    if isinstance(device, Ed25519PrivateKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(public)}
    return {"kty": "EC", "crv": "P-256", "x": _b64(public[:32]), "y": _b64(public[32:])}


class Phone:
    """A member's phone: its key and the bound credential the server handed it."""

    def __init__(self, device: PrivateKey) -> None:
        self.device = device
        self.credential = b""
        self.binding_id = 0

    def live(self, step: int | None = None) -> str:
        card_id = parse_bound_credential(self.credential)[0].claims.card_id
        now = step if step is not None else time_step_at(datetime.now(UTC).timestamp())
        return live_qr_text(self.credential, card_id, now, self.device)


@pytest.fixture
def member(db: Session, cipher: PiiCipher, tree: Tree) -> Member:
    return make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo")


@pytest.fixture
def officer(client: TestClient, tree: Tree) -> dict[str, str]:
    return login(client, "t.officer.a")


@pytest.fixture
def token(db: Session, cipher: PiiCipher, member: Member) -> str:
    link = member_links.create_link(db, SYSTEM, cipher, member_links.LoggingMessenger(), member.id, channel="paper",
                                    base_url="https://cards.example")
    return link.token


def code_for(client: TestClient, officer: dict[str, str], member: Member) -> str:
    response = client.post(f"/v1/members/{member.id}/binding-code", headers=officer)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    code: str = response.json()["code"]
    return code


def activate(client: TestClient, officer: dict[str, str], member: Member, token: str,
             device: PrivateKey | None = None) -> Phone:
    phone = Phone(device or Ed25519PrivateKey.generate())
    response = client.post(f"/m/{token}/binding",
                           json={"code": code_for(client, officer, member), "public_key": jwk_of(phone.device)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["time_step_seconds"] == LIVE_STEP_SECONDS
    phone.credential = base64.b64decode(body["credential_base64"])
    phone.binding_id = body["binding_id"]
    return phone


@pytest.fixture
def door(client: TestClient, db: Session, tree: Tree) -> Door:
    return make_door(client, db, make_event(db, tree.commune_a.id))


def test_a_bound_phone_checks_in_with_a_live_code(app: FastAPI, client: TestClient, db: Session, member: Member,
                                                  officer: dict[str, str], token: str, door: Door) -> None:
    card, _printed = issue(app, db, member)
    phone = activate(client, officer, member, token)
    code = phone.live()
    answer = scan(client, door, code)
    assert verdict(answer) == ("ok", None)
    assert answer.json()["live"] is True and answer.json()["id_check"] is False
    assert answer.json()["member"]["member_number"] == member.member_number
    # The same code again within its window: the event's exactly-once rule.
    assert verdict(scan(client, door, code)) == ("error", "already_checked_in")
    # The bound credential has the card's claims, its own status slot and the phone's key.
    bound, _cnf = parse_bound_credential(phone.credential)
    binding = db.get(CardBinding, phone.binding_id)
    assert binding is not None and binding.card_id == card.id and binding.status == "active"
    assert (bound.claims.status_list, bound.claims.status_index) == (binding.status_list_id, binding.status_index)
    assert (bound.claims.card_id.hex(), bound.claims.display_name) == (card.card_id, member.full_name)
    assert (bound.claims.status_list, bound.claims.status_index) != (card.status_list_id, card.status_index)
    # A copy of the bound credential without the phone's key is refused in every form.
    assert verdict(scan(client, door, to_qr_text(phone.credential))) == ("error", "holder_proof_invalid")
    assert verdict(scan(client, door, payload_base64=base64.b64encode(phone.credential).decode())) == (
        "error", "holder_proof_invalid")
    # A capture older than the window is refused.
    stale = phone.live(time_step_at(datetime.now(UTC).timestamp()) - 3)
    assert verdict(scan(client, door, stale)) == ("error", "stale_live_code")


def test_the_server_keeps_no_key_and_no_phone_identifier(client: TestClient, db: Session, member: Member,
                                                         officer: dict[str, str], token: str, app: FastAPI) -> None:
    issue(app, db, member)
    phone = activate(client, officer, member, token)
    public = holder_key_of(phone.device).public
    dump = json.dumps([dict(row._mapping) for table in ("card_bindings", "binding_codes", "audit_log")
                       for row in db.execute(text(f"SELECT * FROM {table}"))], default=str)
    for form in (public.hex(), _b64(public), base64.b64encode(public).decode()):
        assert form not in dump
    assert phone.credential.hex() not in dump


def test_codes_are_one_time_and_few_guesses_burn_them(app: FastAPI, client: TestClient, db: Session,
                                                      member: Member, officer: dict[str, str], token: str) -> None:
    issue(app, db, member)
    device = jwk_of(Ed25519PrivateKey.generate())
    response = client.post(f"/m/{token}/binding", json={"code": "12345678", "public_key": device})
    assert response.status_code == 422 and response.json()["code"] == "invalid_code"
    code = code_for(client, officer, member)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for _ in range(MAX_CODE_ATTEMPTS):
        response = client.post(f"/m/{token}/binding", json={"code": wrong, "public_key": device})
        assert response.status_code == 422 and response.json()["code"] == "invalid_code"
    # The right code no longer works: the guesses burnt it.
    response = client.post(f"/m/{token}/binding", json={"code": code, "public_key": device})
    assert response.status_code == 422
    code = code_for(client, officer, member)
    assert client.post(f"/m/{token}/binding", json={"code": code, "public_key": device}).status_code == 201
    assert client.post(f"/m/{token}/binding", json={"code": code, "public_key": device}).status_code == 422
    stored = db.scalars(select(BindingCode).where(BindingCode.member_id == member.id)).all()
    assert all(row.code_hash not in (code, wrong) and len(row.code_hash) == 64 for row in stored)
    # Only a link holder can use a code; the link alone, without a code, binds nothing.
    assert client.post("/m/" + "A" * 32 + "/binding", json={"code": code, "public_key": device}).status_code == 404


@pytest.mark.parametrize("key", [
    {"kty": "OKP", "crv": "Ed25519", "x": _b64(bytes(31))},
    {"kty": "EC", "crv": "P-256", "x": _b64(bytes(32)), "y": _b64(bytes(32))},
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"kty": "OKP", "crv": "Ed25519", "x": _b64(bytes(32)), "d": _b64(bytes(32))},
], ids=["short", "off_curve", "rsa", "private"])
def test_unusable_keys_are_refused_before_the_code_is_spent(app: FastAPI, client: TestClient, db: Session,
                                                            member: Member, officer: dict[str, str], token: str,
                                                            key: dict[str, str]) -> None:
    issue(app, db, member)
    code = code_for(client, officer, member)
    response = client.post(f"/m/{token}/binding", json={"code": code, "public_key": key})
    assert response.status_code == 422, response.text
    assert client.post(f"/m/{token}/binding", json={"code": code, "public_key": jwk_of(
        ec.generate_private_key(ec.SECP256R1()))}).status_code == 201


def test_one_phone_per_card_and_the_old_phone_learns_it(app: FastAPI, client: TestClient, db: Session,
                                                        member: Member, officer: dict[str, str], token: str,
                                                        door: Door) -> None:
    issue(app, db, member)
    first = activate(client, officer, member, token)
    second = activate(client, officer, member, token, ec.generate_private_key(ec.SECP256R1()))
    state = client.get(f"/m/{token}/binding").json()
    assert state["binding_id"] == second.binding_id != first.binding_id
    assert verdict(scan(client, door, first.live())) == ("error", "superseded")
    assert verdict(scan(client, door, second.live())) == ("ok", None)
    old = db.get(CardBinding, first.binding_id)
    assert old is not None and (old.status, old.ended_by) == ("superseded", "other_phone")


def test_deactivation_by_the_member_and_by_an_officer(app: FastAPI, client: TestClient, db: Session,
                                                      member: Member, officer: dict[str, str], token: str,
                                                      door: Door) -> None:
    card, printed = issue(app, db, member)
    phone = activate(client, officer, member, token)
    assert client.delete(f"/m/{token}/binding").json() == {"deactivated": phone.binding_id}
    assert client.get(f"/m/{token}/binding").json()["binding_id"] is None
    assert verdict(scan(client, door, phone.live())) == ("error", "revoked")
    again = activate(client, officer, member, token)
    response = client.post(f"/v1/members/{member.id}/binding/deactivate", headers=officer)
    assert response.json() == {"deactivated": again.binding_id}
    assert client.post(f"/v1/members/{member.id}/binding/deactivate", headers=officer).json() == {"deactivated": None}
    assert verdict(scan(client, door, again.live())) == ("error", "revoked")
    # The printed card is untouched.
    assert verdict(scan(client, door, printed)) == ("ok", None)
    actions = [entry.details.get("by") for entry in db.scalars(
        select(AuditEntry).where(AuditEntry.action == "card_binding.deactivate").order_by(AuditEntry.id))]
    assert actions == ["member", "officer"]
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "card_binding.create")) is not None
    # Another chapter's officer sees no such member.
    other = login(client, "t.officer.b")
    assert client.post(f"/v1/members/{member.id}/binding-code", headers=other).status_code == 404
    assert card.status == "active"


def test_the_binding_follows_the_card(app: FastAPI, client: TestClient, db: Session, member: Member,
                                      officer: dict[str, str], token: str, door: Door) -> None:
    card, _printed = issue(app, db, member)
    phone = activate(client, officer, member, token)
    cards.suspend_card(db, SYSTEM, card.card_id, note=None)
    assert verdict(scan(client, door, phone.live())) == ("error", "suspended")
    cards.reinstate_card(db, SYSTEM, card.card_id, note=None)
    assert verdict(scan(client, door, phone.live())) == ("ok", None)
    cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096, reason="lost")
    binding = db.get(CardBinding, phone.binding_id)
    assert binding is not None and (binding.status, binding.ended_by) == ("superseded", "card")
    # The status list stations download says the same, for the binding's slot.
    anchor = TrustAnchor(*key_from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json()))
    uri = status_list_uri(app.state.settings, binding.status_list_id)
    listed = verify_status_list(client.get(f"/v1/status-lists/{binding.status_list_id}").text,
                                algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=uri,
                                now=datetime.now(UTC))
    assert listed.status(binding.status_index) == STATUS_SUPERSEDED
    assert client.post(f"/m/{token}/binding", json={"code": "00000000", "public_key": jwk_of(
        Ed25519PrivateKey.generate())}).status_code == 422


def test_status_lists_and_bundles_carry_bindings_and_the_policy(app: FastAPI, client: TestClient, db: Session,
                                                                member: Member, officer: dict[str, str],
                                                                token: str, tree: Tree) -> None:
    issue(app, db, member)
    phone = activate(client, officer, member, token)
    client.delete(f"/m/{token}/binding")
    live_door = make_door(client, db, make_event(db, tree.commune_a.id, live_policy="live_required"))
    bundle_token = client.get(f"/v1/events/{live_door.event.id}/bundle", headers=live_door.headers).text
    anchor = TrustAnchor(*key_from_jwk(client.get("/.well-known/cardsvc-trust-anchor.json").json()))
    bundle = verify_event_bundle(bundle_token, anchor, datetime.now(UTC))
    assert bundle.event.rules.live_policy == "live_required"
    now = datetime.now(UTC)
    assert decide_offline(phone.live(), bundle, lambda _number: (), now).reason == "revoked"
    again = activate(client, officer, member, token)
    bundle = verify_event_bundle(client.get(f"/v1/events/{live_door.event.id}/bundle",
                                            headers=live_door.headers).text, anchor, now)
    decision = decide_offline(again.live(), bundle, lambda _number: (), now)
    assert (decision.result, decision.live, decision.name) == ("ok", True, member.full_name)
    printed = to_qr_text(cards.current_card(db, member.id).credential)  # type: ignore[union-attr]
    assert decide_offline(printed, bundle, lambda _number: (), now).reason == "live_code_required"


@pytest.mark.parametrize(("policy", "printed_answer", "id_check"), [
    ("any", ("ok", None), False), ("live_preferred", ("ok", None), True),
    ("live_required", ("error", "live_code_required"), False),
])
def test_event_policy_at_check_in(app: FastAPI, client: TestClient, db: Session, member: Member,
                                  officer: dict[str, str], token: str, tree: Tree, policy: str,
                                  printed_answer: tuple[str, str | None], id_check: bool) -> None:
    _card, printed = issue(app, db, member)
    door = make_door(client, db, make_event(db, tree.commune_a.id, live_policy=policy, allow_reentry=True))
    answer = scan(client, door, printed)
    assert verdict(answer) == printed_answer
    assert answer.json()["id_check"] is id_check and answer.json()["live"] is False
    phone = activate(client, officer, member, token)
    live_answer = scan(client, door, phone.live())
    assert verdict(live_answer) == ("ok", None) and live_answer.json()["live"] is True


def test_officers_set_the_policy_on_the_event(client: TestClient, officer: dict[str, str], tree: Tree) -> None:
    body: dict[str, Any] = {"chapter_id": tree.commune_a.id, "title": "Đại hội", "starts_at": "2027-03-08T08:00:00Z",
                            "ends_at": "2027-03-08T11:00:00Z", "live_policy": "live_required"}
    created = client.post("/v1/events", json=body, headers=officer)
    assert created.status_code == 201 and created.json()["live_policy"] == "live_required"
    assert client.post("/v1/events", json={**body, "live_policy": "sometimes"}, headers=officer).status_code == 422
    default = client.post("/v1/events", json={k: v for k, v in body.items() if k != "live_policy"}, headers=officer)
    assert default.json()["live_policy"] == "any"


def test_an_officers_manual_check_in_shows_no_card_and_meets_no_policy(db: Session, member: Member,
                                                                       officer: dict[str, str], client: TestClient,
                                                                       tree: Tree) -> None:
    """A member without a smartphone at a live_required event: the officer checks her in by hand (§8.6)."""
    event = make_event(db, tree.commune_a.id, live_policy="live_required")
    answer = client.post(f"/v1/events/{event.id}/checkins", headers=officer, json={
        "source": "manual", "client_nonce": nonce(), "member_id": member.id, "manual_reason": "không có điện thoại"})
    assert verdict(answer) == ("ok", None)
    assert (answer.json()["live"], answer.json()["id_check"]) == (False, False)


def test_the_event_form_chooses_the_policy_and_the_event_page_shows_it(client: TestClient, tree: Tree) -> None:
    csrf = page_login(client, "t.officer.a")
    start = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    form = {"csrf_token": csrf, "chapter": str(tree.commune_a.id), "title": "Đại hội", "venue": "Hội trường",
            "starts_at": f"{start}T08:00", "ends_at": f"{start}T11:30", "eligibility": "subtree", "mode": "entry"}
    assert 'name="live_policy" value="any" checked' in client.get("/admin/events/new").text
    created = client.post("/admin/events", data={**form, "live_policy": "live_preferred"}, follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"]).text
    assert "Ưu tiên thẻ động (thẻ in phải đối chiếu giấy tờ tùy thân)" in page
    refused = client.post("/admin/events", data={**form, "live_policy": "sometimes"})
    assert refused.status_code == 422
    error = refused.text.split('id="event-error">', 1)[1].split("</div>", 1)[0]
    assert "Loại thẻ được nhận" in error and "live_policy" not in error


def test_officer_pages_show_the_code_once_and_turn_the_live_card_off(app: FastAPI, client: TestClient, db: Session,
                                                                     member: Member, token: str, tree: Tree) -> None:
    issue(app, db, member)
    csrf = page_login(client, "t.officer.a")
    page = client.get(f"/admin/members/{member.id}")
    assert "Chưa bật trên điện thoại nào." in page.text and 'id="binding-code"' not in page.text
    shown = client.post(f"/admin/members/{member.id}/binding-code", data={"csrf_token": csrf})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    code = shown.text.split('id="binding-code">', 1)[1].split("<", 1)[0]
    device = Ed25519PrivateKey.generate()
    assert client.post(f"/m/{token}/binding", json={"code": code, "public_key": jwk_of(device)}).status_code == 201
    page = client.get(f"/admin/members/{member.id}").text
    assert "Đang bật trên một điện thoại" in page
    # One click: the form asks no confirmation (the printed card keeps working; a new code turns it on again).
    form = page.split(f'action="/admin/members/{member.id}/binding/deactivate"', 1)[1].split(">", 1)[0]
    assert "data-confirm" not in form
    # A suspended card's binding can still be turned off (a phone lost meanwhile); no new code is offered then.
    card = cards.current_card(db, member.id)
    assert card is not None
    cards.suspend_card(db, SYSTEM, card.card_id, note=None)
    page = client.get(f"/admin/members/{member.id}").text
    assert 'id="deactivate-binding"' in page and 'id="create-binding-code"' not in page
    off = client.post(f"/admin/members/{member.id}/binding/deactivate", data={"csrf_token": csrf},
                      follow_redirects=False)
    assert off.status_code == 303
    assert client.get(off.headers["location"]).text.count("Đã tắt thẻ động") == 1
    assert client.get(f"/m/{token}/binding").json()["binding_id"] is None
