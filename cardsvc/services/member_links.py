"""Personal links to a member's digital card: create (and send), revoke, resolve, and the card the page shows.

A link is ``<public base URL>/m/<token>``: the token is 192 random bits, stored only as its SHA-256 hex digest, so
neither the database nor the URL holds anything personal (never the ID number). A member has at most one active
link; creating a new one (a "re-send") revokes the previous one. Messages go out through a :class:`Messenger`
(SMS or Zalo); :class:`LoggingMessenger` is the stand-in until a gateway is contracted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsvc.days import vietnam_today
from cardsvc.db.base import utcnow
from cardsvc.db.models import MEMBER_LINK_CHANNELS, Card, Member, MemberLink
from cardsvc.errors import Conflict, NotFound, ValidationFailed
from cardsvc.security import PiiCipher
from cardsvc.services import audit, cards
from cardsvc.services.consents import has_active_consent
from cardsvc.services.context import Actor
from cardsvc.services.members import get_member
from cardsvc.services.pii import mask_phone, stored_value
from issuance.credential import credential_qr_text
from issuance.render import qr_svg

log = logging.getLogger("cardsvc.member_links")

Channel = Literal["sms", "zalo", "paper"]
# token_urlsafe(24): 32 characters of [A-Za-z0-9_-]; all of them are in the GSM 7-bit alphabet, so an SMS stays
# one 160-character segment.
TOKEN_BYTES = 24
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")
# Writing last_used_at on every page view would turn each refresh into a write; once an hour is enough.
USE_RECORD_INTERVAL = timedelta(hours=1)
MESSAGING_PURPOSE = "digital_card_messaging"


class Messenger(Protocol):
    """Delivers a short text to a member's phone by SMS or Zalo."""

    def send(self, member: Member, phone: str, text: str, channel: Channel) -> None:
        """Send ``text`` to the member's ``phone`` (decrypted for this message only) over ``channel`` ("sms" or
        "zalo").

        Raises:
            Any exception when the gateway refuses the message; the caller then stores nothing.
        """


class LoggingMessenger:
    """A stand-in messenger that logs that a message would be sent (member id, channel, masked phone, length).

    It never logs the text (which holds the link token) nor the phone number.
    """

    def send(self, member: Member, phone: str, text: str, channel: Channel) -> None:
        log.info("member link message not sent (logging messenger)",
                 extra={"member_id": member.id, "channel": channel, "phone": mask_phone(phone),
                        "chars": len(text)})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(base_url: str, token: str) -> str:
    """The address the member opens: ``<base>/m/<token>``."""
    return f"{base_url.rstrip('/')}/m/{token}"


def message_text(url: str, channel: Channel) -> str:
    """The message with the link. SMS is written without diacritics: one Vietnamese accent would switch the
    message to UCS-2, where a segment holds 70 characters instead of 160."""
    if channel == "sms":
        return f"Hoi LHPN: the hoi vien dien tu cua chi: {url} Khong chia se duong link nay."
    return f"Hội LHPN: thẻ hội viên điện tử của chị: {url}\nVui lòng không chia sẻ đường link này."


@dataclass(frozen=True)
class NewLink:
    """A freshly created link. ``token`` and ``url`` exist only here: the database keeps the hash."""

    link: MemberLink
    token: str
    url: str
    sent: bool


def _active_links(session: Session, member_id: int) -> Sequence[MemberLink]:
    return session.scalars(
        select(MemberLink).where(MemberLink.member_id == member_id, MemberLink.revoked_at.is_(None))
    ).all()


def _revoke_all(session: Session, member_id: int) -> list[int]:
    now = utcnow()
    revoked = []
    for link in _active_links(session, member_id):
        link.revoked_at = now
        revoked.append(link.id)
    session.flush()
    return revoked


def sending_problem(session: Session, member: Member) -> Literal["no_phone", "no_consent"] | None:
    """Why a link cannot be sent to the member by SMS or Zalo (no phone number, or no consent to card messages)."""
    if member.phone_ciphertext is None:
        return "no_phone"
    if not has_active_consent(session, member.id, MESSAGING_PURPOSE):
        return "no_consent"
    return None


def create_link(session: Session, actor: Actor, cipher: PiiCipher, messenger: Messenger, member_id: int, *,
                channel: str, base_url: str) -> NewLink:
    """Create a member's link (revoking her previous one) and send it by SMS or Zalo, or return it for paper.

    This is also how a link is re-sent: the raw token of an older link is not kept, so a new one replaces it.
    The message is sent before the commit, so a refused message leaves the previous link in place.

    Args:
        channel: ``sms`` or ``zalo`` (needs a phone number and the member's consent to card messages) or
            ``paper`` (the officer prints the link as a QR code on the member's form).
        base_url: The service's public address, which starts the link.

    Returns:
        The link with its raw token and URL, shown this once.

    Raises:
        ValidationFailed: Unknown channel. Conflict: ``no_phone``, ``no_consent`` or ``member_not_active``.
        NotFound: The member is unknown or outside the officer's scope.
    """
    actor.require_write()
    if channel not in MEMBER_LINK_CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(MEMBER_LINK_CHANNELS)}",
                               details=[{"field": "channel", "code": "invalid_channel"}])
    member = get_member(session, actor, member_id)
    if member.status in ("left", "deceased"):
        raise Conflict(f"no card link for a member who has {member.status}", code="member_not_active")
    problem = sending_problem(session, member) if channel != "paper" else None
    if problem == "no_phone":
        raise Conflict("the member has no phone number to send the link to", code="no_phone")
    if problem == "no_consent":
        raise Conflict("the member has not consented to card messages (digital_card_messaging)", code="no_consent")
    phone = stored_value(member, "phone", cipher) if channel != "paper" else None
    revoked = _revoke_all(session, member.id)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = MemberLink(member_id=member.id, token_hash=_hash(token), channel=channel, created_by_id=actor.id,
                      created_at=utcnow())
    session.add(link)
    session.flush()
    url = link_url(base_url, token)
    audit.record(session, actor, "member_link.create", target_type="member_link", target_id=link.id,
                 chapter_path=member.chapter.path,
                 details={"member_id": member.id, "channel": channel, "revoked": revoked})
    sent = phone is not None
    if phone is not None:
        by: Channel = "sms" if channel == "sms" else "zalo"
        messenger.send(member, phone, message_text(url, by), by)
        audit.record(session, actor, "member_link.send", target_type="member_link", target_id=link.id,
                     chapter_path=member.chapter.path, details={"member_id": member.id, "channel": channel})
    session.commit()
    return NewLink(link, token, url, sent)


def revoke_links(session: Session, actor: Actor, member_id: int) -> list[int]:
    """Revoke the member's active link (if any); returns the ids revoked. Repeating it changes nothing."""
    actor.require_write()
    member = get_member(session, actor, member_id)
    revoked = _revoke_all(session, member.id)
    if revoked:
        audit.record(session, actor, "member_link.revoke", target_type="member", target_id=member.id,
                     chapter_path=member.chapter.path, details={"links": revoked})
    session.commit()
    return revoked


def list_links(session: Session, actor: Actor, member_id: int) -> Sequence[MemberLink]:
    """Every link the member has had, oldest first (hashes only; the tokens are not kept)."""
    member = get_member(session, actor, member_id)
    return session.scalars(select(MemberLink).where(MemberLink.member_id == member.id).order_by(MemberLink.id)).all()


def resolve(session: Session, token: str, *, request_id: str | None = None) -> MemberLink:
    """The active link for a raw token; records its use (at most once an hour, audited).

    Raises:
        NotFound: The token is malformed, unknown or revoked — all alike, so a probe learns nothing.
    """
    if not _TOKEN_RE.fullmatch(token):
        raise NotFound("this card link is not valid", code="link_not_found")
    digest = _hash(token)
    link = session.scalar(select(MemberLink).where(MemberLink.token_hash == digest))
    # The index lookup is exact; compare again in constant time so the decision never depends on string timing.
    if link is None or not hmac.compare_digest(link.token_hash, digest) or link.revoked_at is not None:
        raise NotFound("this card link is not valid", code="link_not_found")
    now = utcnow()
    if link.last_used_at is None or now - link.last_used_at >= USE_RECORD_INTERVAL:
        link.last_used_at = now
        actor = Actor("system", None, "member-link", "viewer", None, request_id=request_id)
        audit.record(session, actor, "member_link.use", target_type="member_link", target_id=link.id,
                     chapter_path=link.member.chapter.path, details={"member_id": link.member_id})
        session.commit()
    return link


CardState = Literal["active", "suspended", "expired", "revoked", "no_card"]


@dataclass(frozen=True)
class CardOnPhone:
    """What the member's page shows: no ID number, birth date or phone, only what is printed on the card."""

    state: CardState
    full_name: str
    member_number: str
    chapter_name: str
    card_id: str | None
    version: int | None
    issued_on: date | None
    expires_on: date | None
    card_status: str | None
    qr_text: str | None
    qr_svg: str | None
    checked_at: datetime


def _latest_card(session: Session, member_id: int) -> Card | None:
    return session.scalar(select(Card).where(Card.member_id == member_id).order_by(Card.version.desc()).limit(1))


def shown_card(session: Session, member_id: int, today: date) -> tuple[Card | None, CardState]:
    """The card a member's page and wallet pass show (the current one, else the latest) and its state."""
    card = cards.current_card(session, member_id) or _latest_card(session, member_id)
    state: CardState
    if card is None:
        state = "no_card"
    elif card.status not in cards.CURRENT:
        state = "revoked"
    elif card.expires_on < today:
        state = "expired"
    else:
        state = "active" if card.status == "active" else "suspended"
    return card, state


def card_on_phone(session: Session, token: str, *, request_id: str | None = None,
                  today: date | None = None) -> CardOnPhone:
    """The member's current card for her link, or a clear state when there is none to show.

    ``revoked`` and ``expired`` cards carry no QR: the door would refuse it, and the page says why instead.

    Raises:
        NotFound: The link is unknown or revoked.
    """
    link = resolve(session, token, request_id=request_id)
    member = link.member
    card, state = shown_card(session, member.id, today or vietnam_today())
    qr_text = credential_qr_text(card.credential) if card is not None and state in ("active", "suspended") else None
    return CardOnPhone(
        state=state, full_name=member.full_name, member_number=member.member_number,
        chapter_name=member.chapter.name, card_id=card.card_id if card else None,
        version=card.version if card else None, issued_on=card.issued_on if card else None,
        expires_on=card.expires_on if card else None, card_status=card.status if card else None,
        qr_text=qr_text, qr_svg=qr_svg(qr_text) if qr_text else None,
        checked_at=utcnow(),
    )
