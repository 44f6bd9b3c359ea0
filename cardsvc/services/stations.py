"""Check-in stations: registration by an officer, one-time provisioning, device tokens, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Station
from cardsvc.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from cardsvc.services import audit
from cardsvc.services.context import Actor
from cardsvc.services.events import get_event

DEVICE_TOKEN_PREFIX = "cdv_"
PROVISIONING_TTL = timedelta(hours=24)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def provisioning_url(public_base_url: str, code: str) -> str:
    """What a station's set-up QR holds: the check-in page, with the one-time code in the fragment (never sent to
    the server in a request line, so it stays out of access logs)."""
    return f"{public_base_url.rstrip('/')}/checkin#setup={code}"


@dataclass(frozen=True)
class Registration:
    station: Station
    provisioning_code: str


def register_station(session: Session, actor: Actor, event_id: int, name: str) -> Registration:
    """Register a station for an event; the one-time provisioning code is shown once (as a QR) and expires."""
    actor.require_write()
    event = get_event(session, actor, event_id)
    clean = " ".join(name.split())
    if not clean:
        raise ValidationFailed("the station needs a name", details=[{"field": "name", "code": "required"}])
    code = secrets.token_urlsafe(18)
    station = Station(event_id=event.id, name=clean, provisioning_hash=_hash(code),
                      provisioning_expires_at=utcnow() + PROVISIONING_TTL, status="pending", created_by_id=actor.id)
    session.add(station)
    session.flush()
    audit.record(session, actor, "station.register", target_type="station", target_id=station.id,
                 chapter_path=event.chapter.path, details={"event_id": event.id, "name": clean})
    session.commit()
    return Registration(station, code)


@dataclass(frozen=True)
class Provisioned:
    station: Station
    device_token: str


def provision(session: Session, code: str) -> Provisioned:
    """Exchange a one-time provisioning code for the station's device token (usable once, before it expires)."""
    station = session.scalar(select(Station).where(Station.provisioning_hash == _hash(code[:64])))
    now = utcnow()
    if (station is None or station.status != "pending" or station.provisioning_expires_at is None
            or station.provisioning_expires_at < now):
        raise AuthenticationFailed("this set-up code is unknown, used or expired; ask for a new one",
                                   code="invalid_provisioning_code")
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    station.token_hash = _hash(token)
    station.provisioning_hash = None
    station.provisioning_expires_at = None
    station.status = "active"
    station.last_seen_at = now
    session.commit()
    return Provisioned(station, token)


def device_token_digest(token: str) -> str:
    """The stored form of a device token (401 ``invalid_token`` for anything that is not one)."""
    if not token.startswith(DEVICE_TOKEN_PREFIX) or len(token) > 100:
        raise AuthenticationFailed("not a device token", code="invalid_token")
    return _hash(token)


def require_active_station(digest: str, stored_hash: str | None, status: str | None) -> None:
    """Refuse a token whose station was not found (``stored_hash`` None), or was revoked (401 ``invalid_token``)."""
    # The hash lookup is exact; compare again in constant time so the check never depends on string timing.
    if stored_hash is None or not hmac.compare_digest(stored_hash, digest):
        raise AuthenticationFailed("unknown or revoked device token", code="invalid_token")
    if status != "active":
        raise AuthenticationFailed("this station was revoked", code="invalid_token")


def station_for_token(session: Session, token: str) -> Station:
    digest = device_token_digest(token)
    station = session.scalar(select(Station).where(Station.token_hash == digest))
    require_active_station(digest, station.token_hash if station else None, station.status if station else None)
    assert station is not None
    return station


def list_stations(session: Session, actor: Actor, event_id: int) -> Sequence[Station]:
    event = get_event(session, actor, event_id)
    return session.scalars(select(Station).where(Station.event_id == event.id).order_by(Station.id)).all()


def revoke_station(session: Session, actor: Actor, event_id: int, station_id: int) -> Station:
    actor.require_write()
    event = get_event(session, actor, event_id)
    station = session.get(Station, station_id)
    if station is None or station.event_id != event.id:
        raise NotFound("station not found")
    if station.status == "revoked":
        raise Conflict("the station is already revoked", code="station_revoked")
    station.status = "revoked"
    station.token_hash = None
    station.provisioning_hash = None
    audit.record(session, actor, "station.revoke", target_type="station", target_id=station.id,
                 chapter_path=event.chapter.path)
    session.commit()
    return station
