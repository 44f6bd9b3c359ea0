"""A member's digital-card link (``/m/…``) from her page: create it and print it on paper, send it by SMS or Zalo,
or revoke it. The same service functions as ``POST /v1/members/{id}/links`` (and ``…/links/revoke``): the same
scope, consent checks and audit entries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from cardsvc.addresses import address_problems, public_base_url
from cardsvc.api.deps import CipherDep, SessionDep
from cardsvc.api.member_links import MessengerDep
from cardsvc.api.schemas import Id
from cardsvc.services import member_links
from cardsvc.web.admin.context import PREFIX, PageRoute, PostedPageDep, answer_once, redirect
from cardsvc.web.admin.qr import text_qr_svg

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)


@router.post("/members/{member_id}/links")
def create_link(member_id: Id, page: PostedPageDep, session: SessionDep, cipher: CipherDep, messenger: MessengerDep,
                channel: Annotated[str, Form(max_length=10)] = "paper") -> Response:
    """A new link (the previous one stops working): sent by SMS or Zalo, or shown once to print (``paper``)."""
    base_url = public_base_url(page.request)
    new = member_links.create_link(session, page.require_actor(), cipher, messenger, member_id, channel=channel,
                                   base_url=base_url)
    if new.sent:
        return redirect(f"{PREFIX}/members/{member_id}?done=link_sent_{channel}")
    return answer_once(page.render("member_link.html", member=new.link.member, url=new.url,
                                   qr=text_qr_svg(new.url, page.t("link.qr")), base_url=base_url,
                                   address_problems=address_problems(base_url)))


@router.post("/members/{member_id}/links/revoke")
def revoke_link(member_id: Id, page: PostedPageDep, session: SessionDep) -> Response:
    """Revoke her link (a lost phone): the page on that phone wipes the card it kept."""
    member_links.revoke_links(session, page.require_actor(), member_id)
    return redirect(f"{PREFIX}/members/{member_id}?done=link_revoked")
