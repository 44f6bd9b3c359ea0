"""Members' personal card links: officers create (and send) and revoke them; the member's page reads its card.

The request and response bodies live here rather than in ``api/schemas.py`` because they serve only these routes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict

from cardsvc.api.deps import CipherDep, OfficerDep, PublicBaseUrlDep, RequestIdDep, SessionDep
from cardsvc.api.schemas import Id
from cardsvc.services import member_links
from cardsvc.services.member_links import CardOnPhone, LoggingMessenger, Messenger

router = APIRouter(tags=["member links"])


def get_messenger(request: Request) -> Messenger:
    """The application's messenger (``app.state.messenger``), or the logging stand-in while none is configured."""
    messenger: Messenger | None = getattr(request.app.state, "messenger", None)
    return messenger if messenger is not None else LoggingMessenger()


MessengerDep = Annotated[Messenger, Depends(get_messenger)]


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "zalo", "paper"]


class LinkOut(BaseModel):
    id: int
    member_id: int
    channel: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewLinkOut(LinkOut):
    url: str
    sent: bool


class LinksRevoked(BaseModel):
    member_id: int
    revoked: list[int]


class MemberCardOut(BaseModel):
    """The card as the member's page shows it. ``qr_text``/``qr_svg`` are null unless the card can be used."""

    state: Literal["active", "suspended", "expired", "revoked", "no_card"]
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

    @classmethod
    def of(cls, card: CardOnPhone) -> MemberCardOut:
        return cls.model_validate(card, from_attributes=True)


@router.post("/v1/members/{member_id}/links", response_model=NewLinkOut, status_code=status.HTTP_201_CREATED)
def create_link(member_id: Id, body: LinkCreate, actor: OfficerDep, session: SessionDep, cipher: CipherDep,
                base_url: PublicBaseUrlDep, messenger: MessengerDep) -> NewLinkOut:
    """Create the member's card link (her previous link stops working) and send it by SMS or Zalo, or return it
    for printing (``paper``). The URL is shown only in this response."""
    new = member_links.create_link(session, actor, cipher, messenger, member_id, channel=body.channel,
                                   base_url=base_url)
    link = LinkOut.model_validate(new.link, from_attributes=True)
    return NewLinkOut(**link.model_dump(), url=new.url, sent=new.sent)


@router.get("/v1/members/{member_id}/links", response_model=list[LinkOut])
def list_links(member_id: Id, actor: OfficerDep, session: SessionDep) -> list[LinkOut]:
    """The member's links, newest last (never their tokens)."""
    return [LinkOut.model_validate(link, from_attributes=True)
            for link in member_links.list_links(session, actor, member_id)]


@router.post("/v1/members/{member_id}/links/revoke", response_model=LinksRevoked)
def revoke_links(member_id: Id, actor: OfficerDep, session: SessionDep) -> LinksRevoked:
    """Revoke the member's active link, e.g. when her phone is lost; repeating it changes nothing."""
    return LinksRevoked(member_id=member_id, revoked=member_links.revoke_links(session, actor, member_id))


@router.get("/m/{token}/card.json", response_model=MemberCardOut)
def member_card(token: str, response: Response, session: SessionDep, req_id: RequestIdDep) -> MemberCardOut:
    """The member's current card for her link (public: the link's random token is the credential).

    404 ``link_not_found`` for an unknown or revoked link."""
    response.headers["Cache-Control"] = "no-store"
    return MemberCardOut.of(member_links.card_on_phone(session, token, request_id=req_id))
