"""Wallet passes end to end: the .pkpass (zip, manifest, PKCS#7 signature, barcode through verify()), the Google
save JWT, the PassKit web service, and a card change reaching the fake APNs and Google servers through the outbox."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, Member, SigningKey, WalletPass, WalletRegistration, WalletUpdate
from cardsvc.security import PiiCipher
from cardsvc.services import cards, member_links, members
from cardsvc.services.checkins import DatabaseStatus, server_trust
from cardsvc.services.keys import KeyRing
from cardsvc.services.wallet import WalletSetup, load_setup, pass_token
from cardsvc.services.wallet_updates import ERASED_DEVICE_GRACE, make_senders, process_updates
from cardsvc.settings import Settings
from tests.conftest import SYSTEM, Tree, login, make_member
from tests.wallet.fakes import (
    APNS_KEY_ID,
    ISSUER_ID,
    PASS_TYPE_ID,
    TEAM_ID,
    FakeApns,
    FakeGoogleWallet,
    WalletPki,
    make_pki,
    running_fakes,
)
from tests.wallet.pkcs7 import verify_detached
from verification.verify import verify

DEVICE = "d3v1ce0000000001"
PUSH_TOKEN = "ab" * 32
ID_NUMBER = "001185123456"


@dataclass
class Wallet:
    settings: Settings
    setup: WalletSetup
    pki: WalletPki
    apns: FakeApns
    google: FakeGoogleWallet


def wallet_settings(settings: Settings, pki: WalletPki, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "wallet_pass_type_id": PASS_TYPE_ID, "wallet_team_id": TEAM_ID,
        "wallet_certificate_file": pki.paths["certificate"], "wallet_key_file": pki.paths["key"],
        "wallet_wwdr_file": pki.paths["ca"], "wallet_apns_key_file": pki.paths["apns_key"],
        "wallet_apns_key_id": APNS_KEY_ID, "wallet_google_issuer_id": ISSUER_ID,
        "wallet_ca_file": pki.paths["ca"], "public_base_url": "https://the.example.vn",
    }
    values.update(changes)
    return settings.model_copy(update=values)


@pytest.fixture
def wallet(app: FastAPI, settings: Settings, tmp_path: Path) -> Iterator[Wallet]:
    pki = make_pki(tmp_path / "pki")
    with running_fakes(pki) as (apns, google):
        key_file = pki.service_account(f"{google.url}/token")
        google.trust(key_file)
        configured = wallet_settings(settings, pki, wallet_google_key_file=key_file, wallet_apns_url=apns.url,
                                     wallet_google_api_url=google.url)
        setup = load_setup(configured)
        assert setup.apple is not None and setup.google is not None, setup.problems
        previous = app.state.wallet
        app.state.wallet = setup
        yield Wallet(configured, setup, pki, apns, google)
        app.state.wallet = previous


@dataclass
class Holder:
    member: Member
    card: Card
    link: str


@pytest.fixture
def holder(db: Session, cipher: PiiCipher, tree: Tree, settings: Settings,
           signing_keys: dict[str, SigningKey]) -> Holder:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo", id_number=ID_NUMBER,
                         phone="0912345678")
    card = cards.issue_card(db, SYSTEM, KeyRing(settings.kek), member.id, validity_years=5,
                            list_size=settings.status_list_size)
    link = member_links.create_link(db, SYSTEM, cipher, member_links.LoggingMessenger(), member.id, channel="paper",
                                    base_url="https://the.example.vn")
    return Holder(member, card, link.token)


def _apple_auth(setup: WalletSetup, serial: str) -> dict[str, str]:
    return {"Authorization": f"ApplePass {pass_token(setup, serial)}"}


def _download(client: TestClient, holder: Holder) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    response = client.get(f"/m/{holder.link}/wallet.pkpass")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apple.pkpass"
    assert response.headers["cache-control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return archive, json.loads(archive.read("pass.json"))


def test_pkpass_is_signed_and_its_barcode_verifies_offline(client: TestClient, db: Session, wallet: Wallet,
                                                           holder: Holder) -> None:
    archive, body = _download(client, holder)
    names = set(archive.namelist())
    assert {"pass.json", "manifest.json", "signature", "vi.lproj/pass.strings", "en.lproj/pass.strings",
            "icon.png", "icon@2x.png", "logo.png"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert set(manifest) == names - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert hashlib.sha1(archive.read(name)).hexdigest() == digest, name
    signer, *others = verify_detached(archive.read("signature"), archive.read("manifest.json"))
    assert signer == wallet.pki.pass_certificate
    assert wallet.pki.ca in others  # the intermediate travels with the signature
    signer.verify_directly_issued_by(wallet.pki.ca)

    (barcode,) = body["barcodes"]
    assert barcode["format"] == "PKBarcodeFormatQR" and barcode["messageEncoding"] == "iso-8859-1"
    assert barcode["message"].isdigit()
    verdict = verify(barcode["message"], server_trust(db), DatabaseStatus(db), utcnow())
    assert verdict.ok and verdict.claims is not None
    assert verdict.claims.member_number == holder.member.member_number

    assert body["passTypeIdentifier"] == PASS_TYPE_ID and body["teamIdentifier"] == TEAM_ID
    assert body["webServiceURL"] == "https://the.example.vn/wallet/apple"
    wallet_pass = db.scalars(select(WalletPass).where(WalletPass.member_id == holder.member.id)).one()
    assert body["serialNumber"] == wallet_pass.serial != holder.member.member_number
    # The database holds the token's hash only.
    assert wallet_pass.auth_token_hash == hashlib.sha256(body["authenticationToken"].encode()).hexdigest()
    assert "voided" not in body
    fields = body["storeCard"]
    assert fields["primaryFields"][0]["value"] == "Nguyễn Thị Phương Thảo"
    assert [f["value"] for f in fields["secondaryFields"]] == [holder.member.member_number, "Chi hội 1"]
    assert '"member_number" = "Số hội viên";' in archive.read("vi.lproj/pass.strings").decode()
    assert '"member_number" = "Member number";' in archive.read("en.lproj/pass.strings").decode()
    # What the printed card shows, nothing more: no ID number, phone or birth date anywhere in the pass.
    everything = b"".join(archive.read(name) for name in names)
    for secret in (ID_NUMBER.encode(), b"912345678", holder.member.birth_date.isoformat().encode(),
                   holder.member.birth_date.strftime("%d/%m/%Y").encode()):
        assert secret not in everything


def test_card_page_offers_both_wallets_only_when_configured(client: TestClient, app: FastAPI, holder: Holder,
                                                            wallet: Wallet) -> None:
    page = client.get(f"/m/{holder.link}").text
    assert f'href="/m/{holder.link}/wallet.pkpass"' in page and "Thêm vào Apple Wallet" in page
    assert f'href="/m/{holder.link}/wallet/google"' in page and "Lưu vào Google Wallet" in page
    app.state.wallet = load_setup(Settings(environment="test", secret_key="x" * 40, _env_file=None))  # type: ignore[call-arg]
    page = client.get(f"/m/{holder.link}").text
    assert "wallet.pkpass" not in page and "wallet/google" not in page
    assert client.get(f"/m/{holder.link}/wallet.pkpass").status_code == 404


def test_a_revoked_link_gets_no_pass(client: TestClient, db: Session, wallet: Wallet, holder: Holder) -> None:
    member_links.revoke_links(db, SYSTEM, holder.member.id)
    assert client.get(f"/m/{holder.link}/wallet.pkpass").status_code == 404
    assert client.get(f"/m/{holder.link}/wallet/google").status_code == 404
    assert db.scalar(select(func.count()).select_from(WalletPass)) == 0


def test_no_pass_without_a_valid_card(client: TestClient, db: Session, wallet: Wallet, holder: Holder) -> None:
    cards.revoke_card(db, SYSTEM, holder.card.card_id, reason="lost", note=None)
    response = client.get(f"/m/{holder.link}/wallet.pkpass")
    assert response.status_code == 409 and response.json()["code"] == "no_card_to_add"


def _save_link_claims(client: TestClient, wallet: Wallet, holder: Holder) -> dict[str, Any]:
    response = client.get(f"/m/{holder.link}/wallet/google", follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("https://pay.google.com/gp/v/save/")
    account = json.loads(Path(str(wallet.settings.wallet_google_key_file)).read_bytes())
    public_key = serialization.load_pem_private_key(account["private_key"].encode(), None).public_key()
    claims: dict[str, Any] = jwt.decode(location.rsplit("/", 1)[1], public_key, algorithms=["RS256"],  # type: ignore[arg-type]
                                        audience="google")
    return claims


def test_google_save_jwt_carries_the_class_and_the_member_object(client: TestClient, db: Session, wallet: Wallet,
                                                                 holder: Holder) -> None:
    claims = _save_link_claims(client, wallet, holder)
    assert claims["typ"] == "savetowallet" and claims["origins"] == ["https://the.example.vn"]
    assert claims["iss"] == "cardsvc-test@test.invalid"
    (google_class,) = claims["payload"]["genericClasses"]
    (google_object,) = claims["payload"]["genericObjects"]
    assert google_class["id"] == f"{ISSUER_ID}.member_card" == google_object["classId"]
    serial = db.scalars(select(WalletPass.serial).where(WalletPass.member_id == holder.member.id)).one()
    assert google_object["id"] == f"{ISSUER_ID}.{serial}" and google_object["state"] == "ACTIVE"
    assert google_object["barcode"]["type"] == "QR_CODE"
    verdict = verify(google_object["barcode"]["value"], server_trust(db), DatabaseStatus(db), utcnow())
    assert verdict.ok
    assert google_object["subheader"]["defaultValue"] == {"language": "vi", "value": "Thẻ hội viên"}
    assert google_object["subheader"]["translatedValues"] == [{"language": "en", "value": "Member card"}]
    assert google_object["logo"]["sourceUri"]["uri"] == "https://the.example.vn/wallet/logo.png"
    assert ID_NUMBER not in json.dumps(google_object)
    assert client.get("/wallet/logo.png").headers["content-type"] == "image/png"


def test_passkit_web_service(client: TestClient, db: Session, wallet: Wallet, holder: Holder) -> None:
    _archive, body = _download(client, holder)
    serial = body["serialNumber"]
    auth = _apple_auth(wallet.setup, serial)
    base = f"/wallet/apple/v1/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"
    wrong = {"Authorization": "ApplePass " + "x" * 43}
    assert client.post(f"{base}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=wrong).status_code == 401
    assert client.post(f"{base}/{serial}", json={"pushToken": "not hex"}, headers=auth).status_code == 422
    assert client.post(f"{base}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth).status_code == 201
    assert client.post(f"{base}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth).status_code == 200
    listed = client.get(base)
    assert listed.status_code == 200 and listed.json()["serialNumbers"] == [serial]
    assert client.get(base, params={"passesUpdatedSince": listed.json()["lastUpdated"]}).status_code == 204
    assert client.get(f"/wallet/apple/v1/devices/{DEVICE}/registrations/pass.other.type").status_code == 404

    latest = client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
    assert latest.status_code == 200 and latest.headers["content-type"] == "application/vnd.apple.pkpass"
    modified = latest.headers["last-modified"]
    again = client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}",
                       headers={**auth, "If-Modified-Since": modified})
    assert again.status_code == 304
    assert client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}", headers=wrong).status_code == 401
    assert client.post("/wallet/apple/v1/log", json={"logs": ["could not reach the server"]}).status_code == 200

    assert client.delete(f"{base}/{serial}", headers=auth).status_code == 200
    assert client.get(base).status_code == 204
    assert db.scalar(select(func.count()).select_from(WalletRegistration)) == 0


def _process(app: FastAPI, wallet: Wallet, **options: Any) -> Any:
    return process_updates(app.state.session_factory, wallet.setup, make_senders(wallet.setup, wallet.settings),
                           worker="test", max_attempts=wallet.settings.wallet_max_attempts, **options)


def _updates(db: Session) -> list[tuple[str, str]]:
    db.expire_all()
    return [(u.channel, u.status) for u in db.scalars(select(WalletUpdate).order_by(WalletUpdate.id))]


def test_revocation_reaches_apns_and_google_and_voids_the_pass(client: TestClient, app: FastAPI, db: Session,
                                                               tree: Tree, wallet: Wallet, holder: Holder) -> None:
    _archive, body = _download(client, holder)
    serial = body["serialNumber"]
    auth = _apple_auth(wallet.setup, serial)
    registrations = f"/wallet/apple/v1/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"
    client.post(f"{registrations}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth)
    tag = client.get(registrations).json()["lastUpdated"]
    saved = _save_link_claims(client, wallet, holder)["payload"]["genericObjects"][0]
    wallet.google.objects[saved["id"]] = saved  # the member tapped "save" on Google's page
    before = client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}", headers=auth).headers["last-modified"]

    officer = login(client, "t.officer.a")
    revoked = client.post(f"/v1/cards/{holder.card.card_id}/revoke", json={"reason": "stolen"}, headers=officer)
    assert revoked.status_code == 200, revoked.text
    # Queued with the revocation, in its transaction; nothing was sent while the officer waited.
    assert _updates(db) == [("apple", "pending"), ("google", "pending")]
    assert wallet.apns.pushes == [] and wallet.google.updates == []

    summary = _process(app, wallet)
    assert (summary.sent, summary.retried, summary.failed) == (2, 0, 0)
    assert _updates(db) == [("apple", "done"), ("google", "done")]
    (push,) = wallet.apns.pushes
    assert push.token == PUSH_TOKEN and push.body == b"{}" and push.headers["apns-topic"] == PASS_TYPE_ID
    ((object_id, updated),) = wallet.google.updates
    assert object_id == saved["id"] and updated["state"] == "INACTIVE" and "barcode" not in updated

    # The device asks what changed and fetches the pass again: it comes back voided, without a barcode.
    changed = client.get(registrations, params={"passesUpdatedSince": tag})
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
    fresh = client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}",
                       headers={**auth, "If-Modified-Since": before})
    assert fresh.status_code == 200
    voided = json.loads(zipfile.ZipFile(io.BytesIO(fresh.content)).read("pass.json"))
    assert voided["voided"] is True and "barcodes" not in voided


def test_reissue_and_member_status_changes_queue_updates(client: TestClient, app: FastAPI, db: Session,
                                                         settings: Settings, wallet: Wallet, holder: Holder) -> None:
    _download(client, holder)
    cards.renew_card(db, SYSTEM, KeyRing(settings.kek), holder.card.card_id, validity_years=5,
                     list_size=settings.status_list_size)
    assert _updates(db) == [("apple", "pending")]  # the supersede and the new card share one pending row
    _process(app, wallet)
    members.change_status(db, SYSTEM, holder.member.id, status="suspended", reason="test", effective_on=None)
    assert _updates(db) == [("apple", "done"), ("apple", "pending")]


def test_a_change_that_rolls_back_queues_nothing(client: TestClient, db: Session, wallet: Wallet,
                                                 holder: Holder) -> None:
    _download(client, holder)
    savepoint = db.begin_nested()
    cards.status_lists.set_card_status(db, holder.card, "suspended", reason="suspended", note=None)
    assert _updates(db) == [("apple", "pending")]
    savepoint.rollback()
    assert _updates(db) == []


def test_failed_sends_are_retried_later_and_survive_a_restart(client: TestClient, app: FastAPI, db: Session,
                                                              wallet: Wallet, holder: Holder) -> None:
    saved = _save_link_claims(client, wallet, holder)["payload"]["genericObjects"][0]
    wallet.google.objects[saved["id"]] = saved
    cards.suspend_card(db, SYSTEM, holder.card.card_id, note=None)
    wallet.google.fail_next = [503]
    first = _process(app, wallet)
    assert (first.sent, first.retried) == (0, 1)
    row = db.scalars(select(WalletUpdate)).one()
    db.refresh(row)
    assert (row.status, row.attempts, row.error) == ("pending", 1, "wallet_api_503")
    assert row.not_before > utcnow() + timedelta(seconds=20)
    assert _process(app, wallet).handled == 0  # not due yet
    # A worker of a restarted process (new adapters, new token) picks the row up once it is due.
    later = _process(app, wallet, now=lambda: utcnow() + timedelta(minutes=1))
    assert later.sent == 1
    assert wallet.google.objects[saved["id"]]["state"] == "INACTIVE"


def test_a_crashed_workers_claim_is_taken_over_and_attempts_are_capped(client: TestClient, app: FastAPI,
                                                                       db: Session, wallet: Wallet,
                                                                       holder: Holder) -> None:
    _save_link_claims(client, wallet, holder)
    cards.suspend_card(db, SYSTEM, holder.card.card_id, note=None)
    row = db.scalars(select(WalletUpdate)).one()
    row.status, row.claimed_by, row.not_before = "claimed", "crashed-worker", utcnow() - timedelta(seconds=1)
    row.attempts = wallet.settings.wallet_max_attempts - 1
    db.commit()
    wallet.google.fail_next = [503]
    summary = _process(app, wallet)
    assert summary.failed == 1
    db.refresh(row)
    assert (row.status, row.error) == ("failed", "wallet_api_503")


def test_gone_device_tokens_lose_their_registration(client: TestClient, app: FastAPI, db: Session,
                                                    wallet: Wallet, holder: Holder) -> None:
    _archive, body = _download(client, holder)
    auth = _apple_auth(wallet.setup, body["serialNumber"])
    client.post(f"/wallet/apple/v1/devices/{DEVICE}/registrations/{PASS_TYPE_ID}/{body['serialNumber']}",
                json={"pushToken": PUSH_TOKEN}, headers=auth)
    wallet.apns.answers[PUSH_TOKEN] = (410, "Unregistered")
    cards.suspend_card(db, SYSTEM, holder.card.card_id, note=None)
    assert _process(app, wallet).sent == 1
    assert db.scalar(select(func.count()).select_from(WalletRegistration)) == 0


def test_readyz_and_metrics_show_certificate_days_left(client: TestClient, app: FastAPI, wallet: Wallet) -> None:
    ready = client.get("/readyz").json()["wallet"]
    assert ready["apple"] is True and ready["google"] is True
    assert ready["certificate_days_left"]["pass"] in (364, 365)
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        metrics = local.get("/metrics").text
    assert 'cardsvc_wallet_certificate_days_left{certificate="pass"} 36' in metrics


def test_erasure_voids_the_pass_everywhere_then_forgets_the_devices(client: TestClient, app: FastAPI, db: Session,
                                                                     wallet: Wallet, holder: Holder) -> None:
    _archive, body = _download(client, holder)
    serial = body["serialNumber"]
    auth = _apple_auth(wallet.setup, serial)
    registrations = f"/wallet/apple/v1/devices/{DEVICE}/registrations/{PASS_TYPE_ID}"
    assert client.post(f"{registrations}/{serial}", json={"pushToken": PUSH_TOKEN}, headers=auth).status_code == 201
    tag = client.get(registrations).json()["lastUpdated"]
    saved = _save_link_claims(client, wallet, holder)["payload"]["genericObjects"][0]
    wallet.google.objects[saved["id"]] = saved
    officer = login(client, "t.officer.a")
    export = client.get(f"/v1/members/{holder.member.id}/export", headers=login(client, "t.admin")).json()
    assert export["wallet_pass"]["apple_added_at"] and export["wallet_pass"]["google_added_at"]
    assert len(export["wallet_pass"]["apple_devices_registered_at"]) == 1
    assert DEVICE not in json.dumps(export) and PUSH_TOKEN not in json.dumps(export)

    members.change_status(db, SYSTEM, holder.member.id, status="left", reason="chuyển đi", effective_on=None)
    _process(app, wallet)  # the update her leaving queued (a suspended or revoked card) is sent
    wallet.apns.pushes.clear()
    wallet.google.updates.clear()
    erased = client.post(f"/v1/members/{holder.member.id}/erase", headers=officer)
    assert erased.status_code == 200, erased.text
    # Even with her card revoked before, the erasure queues the pass's update in its own transaction.
    assert [u for u in _updates(db) if u[1] == "pending"] == [("apple", "pending"), ("google", "pending")]
    assert _process(app, wallet).sent == 2
    (push,) = wallet.apns.pushes
    assert push.token == PUSH_TOKEN
    ((_object_id, updated),) = wallet.google.updates
    name = f"Đã xoá #{holder.member.id}"
    assert updated["state"] == "INACTIVE" and "barcode" not in updated
    assert "Phương Thảo" not in json.dumps(updated, ensure_ascii=False) and name in json.dumps(updated,
                                                                                                ensure_ascii=False)

    # The device, pushed, still finds what changed through its registration and fetches the pass: voided, erased.
    changed = client.get(registrations, params={"passesUpdatedSince": tag})
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [serial]
    fresh = client.get(f"/wallet/apple/v1/passes/{PASS_TYPE_ID}/{serial}", headers=auth)
    voided = json.loads(zipfile.ZipFile(io.BytesIO(fresh.content)).read("pass.json"))
    assert voided["voided"] is True and "barcodes" not in voided
    assert voided["storeCard"]["primaryFields"][0]["value"] == name
    # A device does not register again for an erased member's pass.
    assert client.post(f"{registrations}/{serial}", json={"pushToken": "cd" * 32}, headers=auth).status_code == 200
    assert db.scalar(select(func.count()).select_from(WalletRegistration)) == 1

    # Within the grace the registration stays (a phone that was off asks later); after it, it is gone.
    assert _process(app, wallet, now=lambda: utcnow() + timedelta(hours=1)).handled == 0
    assert db.scalar(select(func.count()).select_from(WalletRegistration)) == 1
    _process(app, wallet, now=lambda: utcnow() + ERASED_DEVICE_GRACE + timedelta(minutes=1))
    assert db.scalar(select(func.count()).select_from(WalletRegistration)) == 0
    assert client.get(registrations).status_code == 204
    # Nothing about her is left pending: every update row is finished.
    assert {status for _channel, status in _updates(db)} == {"done"}
