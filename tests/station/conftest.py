"""Station test kit: a signed event world (trust key, card key, status list, roster, event bundle) built with the
issuance code, and a fake cardsvc server behind ``httpx.MockTransport`` that decides check-ins idempotently."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from issuance.credential import new_card_id, sign_credential
from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from station.store import Provisioning, StationStore
from verification.crypto import public_jwk
from verification.event_bundle import EVENT_BUNDLE_TYP
from verification.format import ALG_EDDSA, CardClaims, to_qr_text
from verification.trust import TRUST_BUNDLE_TYP

ISSUER = "https://cards.example.vn"
LIST_ID = 7
LIST_URI = f"{ISSUER}/v1/status-lists/{LIST_ID}"
EVENT_ID = 42
STATION_ID = 5


@dataclass
class Card:
    member_number: str
    name: str
    credential: bytes
    card_id: bytes

    @property
    def qr(self) -> str:
        return to_qr_text(self.credential)


@dataclass
class World:
    """Keys, cards and a signed event bundle; ``bundle()`` re-signs with other rules."""

    now: datetime
    anchor: LocalSigner = field(default_factory=lambda: LocalSigner(b"\xa1\x01", ALG_EDDSA,
                                                                    generate_private_key("ed25519")))
    card_key: LocalSigner = field(default_factory=lambda: LocalSigner(b"\xc1\x01", ALG_EDDSA,
                                                                      generate_private_key("ed25519")))
    cards: dict[str, Card] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    roster_numbers: set[str] = field(default_factory=set)

    @property
    def anchor_jwk(self) -> dict[str, Any]:
        return public_jwk(self.anchor.kid, self.anchor.algorithm, self.anchor.private_key.public_key())

    def card(self, label: str, name: str, *, index: int, status: int = 0, eligible: bool = True) -> Card:
        number = f"{len(self.cards) + 1:09d}"
        number += str(_luhn(number))
        today = self.now.date()
        claims = CardClaims(card_id=new_card_id(), member_number=number, display_name=name, chapter_code="HNI-BD",
                            card_version=1, issued_on=today - timedelta(days=30),
                            expires_on=date(today.year + 2, 12, 31), status_list=LIST_ID, status_index=index)
        card = Card(number, name, sign_credential(claims, self.card_key), claims.card_id)
        self.cards[label] = card
        self.statuses[index] = status
        if eligible:
            self.roster_numbers.add(number)
        return card

    def bundle(self, *, mode: str = "entry", allow_reentry: bool = False, status: str = "open",
               opens: datetime | None = None, closes: datetime | None = None,
               checkins: list[dict[str, Any]] | None = None, lifetime: timedelta = timedelta(days=2)) -> str:
        iat = int(self.now.timestamp()) - 60
        trust = sign_jwt(self.anchor, {
            "iss": ISSUER, "issuer_name": "Hội LHPN Việt Nam", "iat": iat, "exp": iat + 7 * 86400,
            "format": {"qr_prefix": "8401", "version": 1},
            "keys": [{**public_jwk(self.card_key.kid, self.card_key.algorithm,
                                   self.card_key.private_key.public_key()), "status": "active"}],
            "status_lists": [{"id": LIST_ID, "uri": LIST_URI, "bits": 2}],
        }, typ=TRUST_BUNDLE_TYP)
        compressed = compress_status_bytes(build_status_bytes(4096, self.statuses.items()))
        status_token = status_list_jwt(self.anchor, uri=LIST_URI, compressed=compressed,
                                       issued_at=datetime.fromtimestamp(iat, UTC), ttl_seconds=3600)
        roster = [{"member_number": c.member_number, "name": c.name, "chapter_code": "HNI-BD",
                   "chapter_name": "Phường Ba Đình", "card_ids": [c.card_id.hex()], "photo_url": None}
                  for c in self.cards.values() if c.member_number in self.roster_numbers]
        event = {"id": EVENT_ID, "title": "Sinh hoạt chi hội", "venue": "Nhà văn hóa",
                 "starts_at": self.now.isoformat(), "ends_at": (self.now + timedelta(hours=3)).isoformat(),
                 "checkin_opens_at": (opens or self.now - timedelta(hours=1)).isoformat(),
                 "checkin_closes_at": (closes or self.now + timedelta(hours=3)).isoformat(),
                 "eligibility": "subtree", "mode": mode, "allow_reentry": allow_reentry, "status": status}
        return sign_jwt(self.anchor, {
            "iss": ISSUER, "iat": iat, "exp": iat + int(lifetime.total_seconds()), "event": event,
            "trust_bundle": trust, "status_lists": {str(LIST_ID): status_token}, "roster": roster,
            "checkins": checkins or [],
        }, typ=EVENT_BUNDLE_TYP)


def _luhn(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return (10 - total % 10) % 10


class FakeClock:
    """Monotonic seconds that tests advance (and the fake server advances to simulate a slow answer)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeServer:
    """The cardsvc endpoints a station uses, with the server's idempotency: one record per nonce.

    ``mode``: ``up``; ``down`` (connection refused); ``error`` (500); ``lost_answer`` (records the check-in, then
    the connection breaks before the answer arrives); ``slow`` (answers after ``latency`` seconds of the fake
    clock); ``refuse`` (answers ``refuse_status`` with ``refuse_code``).
    """

    world: World
    clock: FakeClock
    bundle_token: str = ""
    mode: str = "up"
    latency: float = 5.0
    refuse_status: int = 422
    refuse_code: str = "validation_failed"
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)
    entered: dict[str, str] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    # NFC writes handed to the station (the items of GET /v1/devices/nfc-writes) and the results it reported.
    nfc_tasks: list[dict[str, Any]] = field(default_factory=list)
    nfc_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    nfc_result_mode: str = "up"

    def __post_init__(self) -> None:
        self.bundle_token = self.bundle_token or self.world.bundle()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "error":
            return httpx.Response(500, json={"code": "internal", "message": "boom"})
        if self.mode == "slow":
            self.clock.advance(self.latency)
        path = request.url.path
        if path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/v1/devices/provision":
            if json.loads(request.content)["code"] != "good-code":
                return httpx.Response(401, json={"code": "invalid_provisioning_code", "message": "unknown code"})
            return httpx.Response(200, json={"device_token": "cdv_test", "station_id": STATION_ID,
                                             "event_id": EVENT_ID, "server": ISSUER})
        if request.headers.get("Authorization") != "Bearer cdv_test":
            return httpx.Response(401, json={"code": "not_authenticated", "message": "no"})
        if path == "/.well-known/cardsvc-trust-anchor.json":
            return httpx.Response(200, json=self.world.anchor_jwk)
        if path == f"/v1/events/{EVENT_ID}/bundle":
            return httpx.Response(200, text=self.bundle_token, headers={"Content-Type": "application/jwt"})
        if path == f"/v1/events/{EVENT_ID}/checkins":
            return self._checkin(request)
        if path == "/v1/devices/nfc-writes":
            done = set(self.nfc_results)
            return httpx.Response(200, json=[t for t in self.nfc_tasks if t["id"] not in done])
        if path.startswith("/v1/devices/nfc-writes/") and path.endswith("/result"):
            if self.nfc_result_mode == "error":
                return httpx.Response(503, json={"code": "database_unavailable", "message": "later"})
            self.nfc_results[int(path.split("/")[-2])] = json.loads(request.content)
            return httpx.Response(200, json={"status": "done"})
        return httpx.Response(404, json={"code": "not_found", "message": path})

    def _checkin(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "refuse":
            return httpx.Response(self.refuse_status, json={"code": self.refuse_code, "message": "refused"})
        body = json.loads(request.content)
        nonce = body["client_nonce"]
        self.posts.append(nonce)
        self.bodies.append(body)
        if nonce in self.records:
            answer = {**self.records[nonce], "replayed": True}
        else:
            card = next((c for c in self.world.cards.values()
                         if body.get("payload", "").strip() == c.qr
                         or body.get("payload_base64") == _b64(c.credential)), None)
            if card is None:
                answer = {"result": "error", "reason": "malformed", "member": None}
            elif card.member_number in self.entered:
                answer = {"result": "error", "reason": "already_checked_in", "member": _member(card)}
            else:
                self.entered[card.member_number] = nonce
                answer = {"result": "ok", "reason": None, "member": _member(card)}
            answer.update(checkin_id=len(self.records) + 1, direction="in", first_checkin=None, replayed=False,
                          received_at=datetime.now(UTC).isoformat(), scanned_at=body.get("scanned_at"))
            self.records[nonce] = answer
        if self.mode == "lost_answer":
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(200, json=answer)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _member(card: Card) -> dict[str, Any]:
    return {"id": 1, "full_name": card.name, "member_number": card.member_number,
            "chapter": {"id": 3, "code": "HNI-BD", "name": "Phường Ba Đình"}}


@pytest.fixture
def world() -> World:
    w = World(now=datetime.now(UTC).replace(microsecond=0))
    w.card("lan", "Nguyễn Thị Lan", index=10)
    w.card("hoa", "Trần Thị Hoa", index=11)
    w.card("revoked", "Lê Thị Thu", index=12, status=1)
    w.card("outsider", "Phạm Thị Mai", index=13, eligible=False)
    return w


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(world: World, clock: FakeClock) -> FakeServer:
    return FakeServer(world, clock)


@pytest.fixture
def provisioned_store(world: World, server: FakeServer) -> Callable[..., StationStore]:
    def make(bundle: str | None = None) -> StationStore:
        store = StationStore(":memory:")
        store.save_provisioning(Provisioning(ISSUER, "cdv_test", EVENT_ID, STATION_ID, world.anchor_jwk))
        store.save_bundle(bundle or server.bundle_token, world.now)
        return store

    return make
