"""Status-list slots for cards, card status changes, and the signed status-list tokens stations download."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, StatusList
from cardsvc.errors import NotFound
from cardsvc.services import wallet_outbox
from issuance.keys import Signer
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from verification.status import STATUS_REVOKED, STATUS_SUPERSEDED, STATUS_SUSPENDED, STATUS_VALID

STATUS_CODES = {"active": STATUS_VALID, "revoked": STATUS_REVOKED, "suspended": STATUS_SUSPENDED,
                "superseded": STATUS_SUPERSEDED}
# A list is closed to new cards at 75 % so that a random free slot is always found in a few tries.
FILL_LIMIT = 0.75


def allocate_slot(session: Session, size: int) -> tuple[StatusList, int]:
    """A random, never used index in an open list (a new list is opened when the current ones are full).

    Random indexes mean a list position says nothing about when or where a card was issued; slots are never
    reused, so a revoked card can never come back to life through another card's index.
    """
    status_list = session.scalar(
        select(StatusList).where(StatusList.allocated < StatusList.size * FILL_LIMIT).order_by(StatusList.id)
        .limit(1).with_for_update()
    )
    if status_list is None:
        status_list = StatusList(size=size, allocated=0, version=1)
        session.add(status_list)
        session.flush()
    while True:
        index = secrets.randbelow(status_list.size)
        taken = session.scalar(
            select(Card.id).where(Card.status_list_id == status_list.id, Card.status_index == index)
        )
        if taken is None:
            break
    status_list.allocated += 1
    return status_list, index


def set_card_status(session: Session, card: Card, status: str, *, reason: str | None, note: str | None) -> None:
    """Change a card's status, bump its list's version (the ETag stations revalidate against) and queue the update
    of the holder's wallet pass."""
    card.status = status
    card.status_reason = reason
    card.status_note = note
    card.status_changed_at = utcnow()
    session.execute(
        update(StatusList).where(StatusList.id == card.status_list_id)
        .values(version=StatusList.version + 1, updated_at=utcnow())
    )
    wallet_outbox.card_changed(session, card.member_id)


@dataclass(frozen=True)
class StatusListToken:
    token: str
    etag: str
    ttl: int


class StatusListCache:
    """Signed tokens per (list, version), re-signed when half their lifetime has passed."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, int, bytes], tuple[float, StatusListToken]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, signer: Signer, *, list_id: int, uri: str, ttl: int) -> StatusListToken:
        status_list = session.get(StatusList, list_id)
        if status_list is None:
            raise NotFound("no such status list")
        key = (status_list.id, status_list.version, signer.kid)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and time.monotonic() - cached[0] < ttl / 2:
                return cached[1]
        entries = session.execute(
            select(Card.status_index, Card.status).where(Card.status_list_id == status_list.id,
                                                         Card.status != "active")
        ).all()
        data = build_status_bytes(status_list.size, ((index, STATUS_CODES[status]) for index, status in entries))
        token = status_list_jwt(signer, uri=uri, compressed=compress_status_bytes(data), issued_at=utcnow(),
                                ttl_seconds=ttl)
        result = StatusListToken(token, f'W/"{status_list.id}-{status_list.version}-{signer.kid.hex()}"', ttl)
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if k[0] != status_list.id}
            self._tokens[key] = (time.monotonic(), result)
        return result
