"""Live cards (docs/card-format.md §8): the member's page binds her card to her phone and de-activates it; officers
give her the one-time activation code and de-activate a lost phone.

The request and response bodies live here rather than in ``api/schemas.py`` because they serve only these routes.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cardsvc.api.deps import KeyRingDep, OfficerDep, RequestIdDep, SessionDep, SettingsDep
from cardsvc.api.schemas import Id
from cardsvc.db.base import utcnow
from cardsvc.services import bindings
from verification.live import LIVE_STEP_SECONDS

router = APIRouter(tags=["live cards"])
Token = Annotated[str, PathParam(max_length=64)]
NO_STORE = {"Cache-Control": "no-store"}


class BindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(max_length=16)]
    # The phone's public key as a JWK (OKP/Ed25519 or EC/P-256); small by construction.
    public_key: Annotated[dict[str, Any], Field(max_length=8)]


class BindingOut(BaseModel):
    """The bound credential for the phone to keep (the server does not), and the server's clock."""

    binding_id: int
    card_id: str
    credential_base64: str
    server_time: datetime
    time_step_seconds: int


class BindingStateOut(BaseModel):
    """The current binding of the member's card (her page compares it with the one it holds) and the server's
    clock, from which the phone learns its offset."""

    binding_id: int | None
    server_time: datetime
    time_step_seconds: int


class DeactivatedOut(BaseModel):
    deactivated: int | None


class BindingCodeOut(BaseModel):
    """A one-time activation code, shown once."""

    code: str
    expires_at: datetime


@router.post("/m/{token}/binding", response_model=BindingOut, status_code=status.HTTP_201_CREATED)
def bind(token: Token, body: BindingIn, response: Response, session: SessionDep, keyring: KeyRingDep,
         settings: SettingsDep, req_id: RequestIdDep) -> BindingOut:
    """Activate the live card on this phone: its public key and the officer's one-time code. A phone activated
    before stops showing a valid live card (superseded). 422 ``invalid_code`` for a wrong or expired code."""
    response.headers.update(NO_STORE)
    new = bindings.bind(session, keyring, token, code=body.code, public_key=body.public_key,
                        list_size=settings.status_list_size, request_id=req_id)
    return BindingOut(binding_id=new.binding.id, card_id=new.binding.card.card_id,
                      credential_base64=base64.b64encode(new.credential).decode(),
                      server_time=utcnow(), time_step_seconds=LIVE_STEP_SECONDS)


@router.get("/m/{token}/binding", response_model=BindingStateOut)
def binding_state(token: Token, response: Response, session: SessionDep, req_id: RequestIdDep) -> BindingStateOut:
    """The card's current binding (null: none) and the server's clock."""
    response.headers.update(NO_STORE)
    binding = bindings.page_binding(session, token, request_id=req_id)
    return BindingStateOut(binding_id=binding.id if binding else None, server_time=utcnow(),
                           time_step_seconds=LIVE_STEP_SECONDS)


@router.delete("/m/{token}/binding", response_model=DeactivatedOut)
def deactivate(token: Token, session: SessionDep, req_id: RequestIdDep) -> DeactivatedOut:
    """The member's one tap: the live card stops working on every phone (the printed card is untouched)."""
    return DeactivatedOut(deactivated=bindings.deactivate_by_member(session, token, request_id=req_id))


@router.post("/v1/members/{member_id}/binding-code", response_model=BindingCodeOut,
             status_code=status.HTTP_201_CREATED)
def create_binding_code(member_id: Id, response: Response, actor: OfficerDep, session: SessionDep) -> BindingCodeOut:
    """A one-time code (8 digits, 30 minutes) for the member to activate her live card on a phone."""
    response.headers.update(NO_STORE)
    issued = bindings.create_code(session, actor, member_id)
    return BindingCodeOut(code=issued.code, expires_at=issued.expires_at)


@router.post("/v1/members/{member_id}/binding/deactivate", response_model=DeactivatedOut)
def deactivate_member_binding(member_id: Id, actor: OfficerDep, session: SessionDep) -> DeactivatedOut:
    """De-activate the member's live card (a lost phone); her printed card keeps working."""
    return DeactivatedOut(deactivated=bindings.deactivate_by_officer(session, actor, member_id))
