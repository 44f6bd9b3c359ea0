"""Officer accounts (created and disabled by administrators)."""

from __future__ import annotations

from fastapi import APIRouter, status

from cardsvc.api.deps import OfficerDep, SessionDep
from cardsvc.api.schemas import Id, OfficerActive, OfficerCreate, OfficerOut
from cardsvc.services import officers

router = APIRouter(prefix="/v1", tags=["officers"])


@router.get("/officers", response_model=list[OfficerOut])
def list_officers(actor: OfficerDep, session: SessionDep) -> list[OfficerOut]:
    return [OfficerOut.of(o) for o in officers.list_officers(session, actor)]


@router.post("/officers", response_model=OfficerOut, status_code=status.HTTP_201_CREATED)
def create_officer(body: OfficerCreate, actor: OfficerDep, session: SessionDep) -> OfficerOut:
    return OfficerOut.of(officers.create_officer(
        session, actor, username=body.username, password=body.password, role=body.role,
        chapter_id=body.chapter_id, full_name=body.full_name, permissions=body.permissions,
    ))


@router.get("/officers/{officer_id}", response_model=OfficerOut)
def get_officer(officer_id: Id, actor: OfficerDep, session: SessionDep) -> OfficerOut:
    return OfficerOut.of(officers.get_officer(session, actor, officer_id))


@router.post("/officers/{officer_id}/active", response_model=OfficerOut)
def set_active(officer_id: Id, body: OfficerActive, actor: OfficerDep, session: SessionDep) -> OfficerOut:
    """Disable an account (ending its sessions) or enable it again (lifting its login pauses)."""
    return OfficerOut.of(officers.set_active(session, actor, officer_id, body.is_active))


@router.post("/officers/{officer_id}/sign-out-everywhere", status_code=status.HTTP_204_NO_CONTENT)
def sign_out_everywhere(officer_id: Id, actor: OfficerDep, session: SessionDep) -> None:
    """End every session of an officer (administrators; audited), e.g. when her phone is lost."""
    officers.sign_out_everywhere(session, actor, officer_id)
