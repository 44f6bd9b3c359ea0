"""Data-subject requests (Law 91/2025): a member's data export (JSON or PDF) and the erasure of a former member."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cardsvc.api.deps import CipherDep, OfficerDep, SessionDep, SettingsDep
from cardsvc.api.schemas import Id
from cardsvc.services import data_subject

router = APIRouter(prefix="/v1", tags=["members"])


class ErasureOut(BaseModel):
    member_id: int
    already_erased: bool
    cards_revoked: int
    credentials_wiped: int
    consents_withdrawn: int
    links_revoked: int


@router.get("/members/{member_id}/export", response_model=dict[str, Any],
            responses={200: {"content": {"application/pdf": {}}, "description": "the export (JSON, or a PDF)"},
                       403: {}})
def export_member(member_id: Id, actor: OfficerDep, session: SessionDep, cipher: CipherDep, settings: SettingsDep,
                  format: Literal["json", "pdf"] = "json") -> Any:
    """Everything held about the member, ID numbers in clear (needs the ``pii`` permission); audited."""
    export = data_subject.export_member(session, actor, cipher, member_id, fmt=format)
    if format == "pdf":
        pdf = data_subject.export_pdf(export, union_name=settings.union_name)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="member-{member_id}-export.pdf"',
            "Cache-Control": "no-store"})
    # The export holds ID numbers in clear: no browser or proxy may keep a copy.
    return JSONResponse(export, headers={"Cache-Control": "no-store"})


@router.post("/members/{member_id}/erase", response_model=ErasureOut)
def erase_member(member_id: Id, actor: OfficerDep, session: SessionDep) -> ErasureOut:
    """Erase a member who has left or died (409 ``member_active`` otherwise); repeating it changes nothing."""
    result = data_subject.erase_member(session, actor, member_id)
    return ErasureOut(**result.__dict__)
