"""Members, their status history and consents, and member-list imports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status

from cardsvc.api.deps import CipherDep, OfficerDep, SessionDep, SettingsDep
from cardsvc.api.schemas import (
    ConsentCreate,
    ConsentOut,
    ConsentWithdraw,
    Id,
    IdNumberLookup,
    ImportReportOut,
    MemberCreate,
    MemberOut,
    MemberStatusChangeIn,
    MemberUpdate,
    Problem,
    StatusChangeOut,
)
from cardsvc.errors import PayloadTooLarge
from cardsvc.importing.rows import RowProblem
from cardsvc.services import consents, imports, members
from cardsvc.services.members import MemberSearch, problems_to_details

router = APIRouter(prefix="/v1", tags=["members"])


def _problems(problems: list[RowProblem]) -> list[Problem]:
    return [Problem.model_validate(p) for p in problems_to_details(problems)]


@router.get("/members", response_model=list[MemberOut])
def search_members(
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    q: Annotated[str | None, Query(max_length=100, description="name words, accent-insensitive")] = None,
    chapter_id: Id | None = None,
    subtree: bool = True,
    member_status: Annotated[
        str | None, Query(alias="status", pattern="^(active|suspended|left|deceased)$")
    ] = None,
    member_number: Annotated[str | None, Query(max_length=10)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[MemberOut]:
    found = members.search_members(session, actor, cipher, MemberSearch(
        query=q, chapter_id=chapter_id, subtree=subtree, status=member_status, member_number=member_number,
        limit=limit, offset=offset,
    ))
    return [MemberOut.of(m) for m in found]


@router.post("/members/lookup", response_model=list[MemberOut])
def lookup_by_id_number(body: IdNumberLookup, actor: OfficerDep, session: SessionDep, cipher: CipherDep
                        ) -> list[MemberOut]:
    """Find members in scope by citizen ID (12 digits) or old ID (9 digits) number — in the body, never the URL,
    so that the number stays out of access logs and browser history. Audited."""
    found = members.search_members(session, actor, cipher, MemberSearch(id_number=body.id_number, limit=10))
    return [MemberOut.of(m) for m in found]


@router.post("/members", response_model=MemberOut, status_code=status.HTTP_201_CREATED)
def create_member(body: MemberCreate, actor: OfficerDep, session: SessionDep, cipher: CipherDep) -> MemberOut:
    member, warnings = members.create_member(
        session, actor, cipher, chapter_id=body.chapter_id, fields=body.model_dump(exclude={"chapter_id"})
    )
    return MemberOut.of(member, warnings=_problems(warnings))


@router.post("/members/import", response_model=ImportReportOut, responses={404: {}})
def import_members(
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, UTF-16, Windows-1258) or XLSX member list")],
    chapter_code: Annotated[str | None, Form(max_length=32)] = None,
    dry_run: Annotated[bool, Form()] = True,
) -> ImportReportOut:
    """Check (``dry_run``, the default) or import a member list. Valid rows are imported in one transaction;
    the report names every problem by row and column, in Vietnamese and English. (A plain ``def``: the import
    runs in a worker thread, never on the event loop.)"""
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file exceeds {settings.max_upload_bytes} bytes")
    report = imports.import_members(session, actor, cipher, data=data, filename=file.filename or "",
                                    chapter_code=chapter_code, dry_run=dry_run)
    return ImportReportOut.model_validate(report.as_dict())


@router.get("/members/{member_id}", response_model=MemberOut, responses={403: {}})
def get_member(
    member_id: Id,
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    reveal: Annotated[bool, Query(description="show ID numbers in clear (pii permission; audited)")] = False,
) -> MemberOut:
    if reveal:
        identity = members.reveal_identity(session, actor, cipher, member_id)
        return MemberOut.of(identity.member, id_number=identity.id_number or "",
                            old_id_number=identity.old_id_number)
    return MemberOut.of(members.get_member(session, actor, member_id))


@router.patch("/members/{member_id}", response_model=MemberOut)
def update_member(member_id: Id, body: MemberUpdate, actor: OfficerDep, session: SessionDep, cipher: CipherDep
                  ) -> MemberOut:
    """Correct a member's data, or transfer her (``chapter_id``) to another chapter in your scope."""
    member, warnings = members.update_member(session, actor, cipher, member_id, body.model_dump(exclude_unset=True))
    return MemberOut.of(member, warnings=_problems(warnings))


@router.post("/members/{member_id}/status", response_model=MemberOut)
def change_status(member_id: Id, body: MemberStatusChangeIn, actor: OfficerDep, session: SessionDep
                  ) -> MemberOut:
    return MemberOut.of(members.change_status(session, actor, member_id, status=body.status, reason=body.reason,
                                              effective_on=body.effective_on))


@router.get("/members/{member_id}/status-history", response_model=list[StatusChangeOut])
def status_history(member_id: Id, actor: OfficerDep, session: SessionDep) -> list[StatusChangeOut]:
    return [StatusChangeOut.of(c) for c in members.status_history(session, actor, member_id)]


@router.get("/members/{member_id}/consents", response_model=list[ConsentOut])
def list_consents(member_id: Id, actor: OfficerDep, session: SessionDep) -> list[ConsentOut]:
    return [ConsentOut.of(c) for c in consents.list_consents(session, actor, member_id)]


@router.post("/members/{member_id}/consents", response_model=ConsentOut, status_code=status.HTTP_201_CREATED)
def record_consent(member_id: Id, body: ConsentCreate, actor: OfficerDep, session: SessionDep) -> ConsentOut:
    return ConsentOut.of(consents.record_consent(session, actor, member_id, purpose=body.purpose,
                                                 method=body.method, evidence_ref=body.evidence_ref))


@router.post("/members/{member_id}/consents/{consent_id}/withdraw", response_model=ConsentOut)
def withdraw_consent(member_id: Id, consent_id: Id, body: ConsentWithdraw, actor: OfficerDep,
                     session: SessionDep) -> ConsentOut:
    return ConsentOut.of(consents.withdraw_consent(session, actor, member_id, consent_id, note=body.note))
