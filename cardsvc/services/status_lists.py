"""Status-list slots for cards and live-card bindings, their status changes, and the signed status-list tokens
stations download."""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import Card, CardBinding, StatusList
from cardsvc.errors import NotFound
from cardsvc.services import wallet_outbox
from issuance.keys import Signer
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from verification.status import STATUS_REVOKED, STATUS_SUPERSEDED, STATUS_SUSPENDED, STATUS_VALID

STATUS_CODES = {"active": STATUS_VALID, "revoked": STATUS_REVOKED, "suspended": STATUS_SUSPENDED,
                "superseded": STATUS_SUPERSEDED}
# A list is closed to new cards at 75 % so that a random free slot is always found in a few tries.
FILL_LIMIT = 0.75
# A live card's binding (docs/card-format.md §8.5) follows its card: suspended and reinstated with it, ended when the
# card is revoked or superseded.
CURRENT_BINDING = ("active", "suspended")


def allocate_slot(session: Session, size: int) -> tuple[StatusList, int]:
    """A random, never used index in an open list (a new list is opened when the current ones are full).

    Random indexes mean a list position says nothing about when or where a card was issued; slots are never
    reused, so a revoked card can never come back to life through another card's index. Cards and live-card
    bindings share the lists (the list's row lock serialises the choice of a free slot across both).
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
        ) or session.scalar(
            select(CardBinding.id).where(CardBinding.status_list_id == status_list.id,
                                         CardBinding.status_index == index)
        )
        if taken is None:
            break
    status_list.allocated += 1
    return status_list, index


def allocate_slots(session: Session, size: int, count: int) -> list[tuple[int, int]]:
    """``count`` random, never used ``(list id, index)`` slots for a chunk of a batch job, in a few statements.

    The same rules as :func:`allocate_slot`. The open list is locked until the caller's transaction ends, and a list
    another transaction holds is skipped (PostgreSQL ``SKIP LOCKED``; a new one is opened when none is free): two
    batch workers fill two lists side by side instead of waiting for each other. Candidates are drawn at random,
    a little more than needed for the list's free share, and checked against the list's cards and bindings with one
    query per draw. The slots are taken once the caller's cards hold them: store the cards before allocating again.
    """
    rng = secrets.SystemRandom()
    slots: list[tuple[int, int]] = []
    while len(slots) < count:
        status_list = session.scalar(
            select(StatusList).where(StatusList.allocated < StatusList.size * FILL_LIMIT).order_by(StatusList.id)
            .limit(1).with_for_update(skip_locked=True).execution_options(populate_existing=True)
        )
        if status_list is None:
            status_list = StatusList(size=size, allocated=0, version=1)
            session.add(status_list)
            session.flush()
        room = max(1, math.ceil(status_list.size * FILL_LIMIT) - status_list.allocated)
        want = min(count - len(slots), room)
        chosen: dict[int, None] = {}  # insertion-ordered: the order the random draws came in
        while len(chosen) < want:
            need = want - len(chosen)
            free_share = 1 - (status_list.allocated + len(chosen)) / status_list.size
            draws = list(dict.fromkeys(rng.randrange(status_list.size) for _ in range(int(need / free_share) + 16)))
            draws = [index for index in draws if index not in chosen]
            taken = set(session.scalars(
                select(Card.status_index).where(Card.status_list_id == status_list.id, Card.status_index.in_(draws))
            )) | set(session.scalars(
                select(CardBinding.status_index).where(CardBinding.status_list_id == status_list.id,
                                                       CardBinding.status_index.in_(draws))
            ))
            for index in draws:
                if len(chosen) == want:
                    break
                if index not in taken:
                    chosen[index] = None
        status_list.allocated += want
        session.flush()
        slots.extend((status_list.id, index) for index in chosen)
    return slots


def set_card_status(session: Session, card: Card, status: str, *, reason: str | None, note: str | None) -> None:
    """Change a card's status, bump its list's version (the ETag stations revalidate against) and queue the update
    of the holder's wallet pass."""
    card.status = status
    card.status_reason = reason
    card.status_note = note
    card.status_changed_at = utcnow()
    bump_version(session, card.status_list_id)
    binding = session.scalar(select(CardBinding).where(CardBinding.card_id == card.id,
                                                       CardBinding.status.in_(CURRENT_BINDING)))
    if binding is not None:
        set_binding_status(session, binding, status, ended_by=None if status in CURRENT_BINDING else "card")
    wallet_outbox.card_changed(session, card.member_id)


def set_binding_status(session: Session, binding: CardBinding, status: str, *, ended_by: str | None) -> None:
    """Change a live-card binding's status (ending it when ``ended_by`` is given) and bump its list's version."""
    binding.status = status
    if ended_by is not None:
        binding.ended_at = utcnow()
        binding.ended_by = ended_by
    bump_version(session, binding.status_list_id)


def bump_version(session: Session, list_id: int) -> None:
    """A list changed: its version makes the ETag stations revalidate against."""
    session.execute(update(StatusList).where(StatusList.id == list_id)
                    .values(version=StatusList.version + 1, updated_at=utcnow()))


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
            .union_all(select(CardBinding.status_index, CardBinding.status)
                       .where(CardBinding.status_list_id == status_list.id, CardBinding.status != "active"))
        ).all()
        data = build_status_bytes(status_list.size, ((index, STATUS_CODES[status]) for index, status in entries))
        token = status_list_jwt(signer, uri=uri, compressed=compress_status_bytes(data), issued_at=utcnow(),
                                ttl_seconds=ttl)
        result = StatusListToken(token, f'W/"{status_list.id}-{status_list.version}-{signer.kid.hex()}"', ttl)
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if k[0] != status_list.id}
            self._tokens[key] = (time.monotonic(), result)
        return result
