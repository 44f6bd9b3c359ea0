"""Members, their status history and consents, and member-list imports."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Query, UploadFile, status
from fastapi.responses import Response

from cardsvc.api.deps import CipherDep, OfficerDep, SessionDep, SettingsDep, UploadKeeperDep
from cardsvc.api.schemas import (
    ConsentCreate,
    ConsentOut,
    ConsentWithdraw,
    DuplicatePairOut,
    Id,
    ImportReportOut,
    MemberCreate,
    MemberLookup,
    MemberMergeIn,
    MemberMergeOut,
    MemberOut,
    MemberStatusChangeIn,
    MemberUpdate,
    Problem,
    StatusChangeOut,
)
from cardsvc.errors import PayloadTooLarge
from cardsvc.importing.errors_file import MEDIA_TYPES
from cardsvc.importing.rows import RowProblem
from cardsvc.services import consents, imports, members, merges
from cardsvc.services.members import MemberSearch, problems_to_details
from cardsvc.services.pii import masked_view

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
    return [MemberOut.of(m, masked_view(m, actor)) for m in found]


@router.post("/members/lookup", response_model=list[MemberOut])
def lookup_by_id_number(body: MemberLookup, actor: OfficerDep, session: SessionDep, cipher: CipherDep
                        ) -> list[MemberOut]:
    """Find members in scope by citizen ID (12 digits) or old ID (9 digits) number, or by phone number — in the
    body, never the URL, so that the number stays out of access logs and browser history. Audited."""
    found = members.search_members(session, actor, cipher, MemberSearch(id_number=body.id_number, phone=body.phone,
                                                                        limit=10))
    return [MemberOut.of(m, masked_view(m, actor)) for m in found]


@router.post("/members", response_model=MemberOut, status_code=status.HTTP_201_CREATED)
def create_member(body: MemberCreate, actor: OfficerDep, session: SessionDep, cipher: CipherDep) -> MemberOut:
    member, warnings = members.create_member(
        session, actor, cipher, chapter_id=body.chapter_id, fields=body.model_dump(exclude={"chapter_id"})
    )
    return MemberOut.of(member, masked_view(member, actor), warnings=_problems(warnings))


@router.post("/members/import", response_model=ImportReportOut, responses={404: {}})
def import_members(
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, UTF-16, Windows-1258) or XLSX member list")],
    keeper: UploadKeeperDep,
    chapter_code: Annotated[str | None, Form(max_length=32)] = None,
    dry_run: Annotated[bool, Form()] = True,
) -> ImportReportOut:
    """Check (``dry_run``, the default) or import a member list. Valid rows are imported in one transaction;
    the report counts each kind of problem and names its first rows by row and column (the file's own header),
    in Vietnamese and English; when there are problems, ``errors_file`` gives the token of the file with an
    error column. (A plain ``def``: the import runs in a worker thread, never on the event loop.)"""
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file exceeds {settings.max_upload_bytes} bytes")
    report = imports.import_members(session, actor, cipher, data=data, filename=file.filename or "",
                                    chapter_code=chapter_code, dry_run=dry_run, keeper=keeper)
    return ImportReportOut.model_validate(report.as_dict())


@router.get("/members/duplicates", response_model=list[DuplicatePairOut])
def probable_duplicates(
    actor: OfficerDep,
    session: SessionDep,
    chapter_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[DuplicatePairOut]:
    """Pairs of member records in your scope (or ``chapter_id``'s subtree) that are probably one woman registered
    twice: same chapter, name (accent-insensitive) and birth date, and no ID number of the same kind on both."""
    pairs = merges.probable_duplicates(session, actor, chapter_id=chapter_id, limit=limit, offset=offset)
    return [DuplicatePairOut(first=MemberOut.of(p.first, masked_view(p.first, actor)),
                             second=MemberOut.of(p.second, masked_view(p.second, actor))) for p in pairs]


@router.get("/members/import/errors/{token}", response_class=Response,
            responses={200: {"content": {MEDIA_TYPES["xlsx"]: {}, MEDIA_TYPES["csv"]: {}}}})
def import_errors_file(
    token: Annotated[str, Path(max_length=64)],
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    keeper: UploadKeeperDep,
    file_format: Annotated[Literal["xlsx", "csv"], Query(alias="format")] = "xlsx",
    lang: Annotated[Literal["vi", "en"], Query()] = "vi",
) -> Response:
    """The file of an import whose report had problems, checked again and given back with a "Lỗi / Errors"
    column beside each row, to correct in Excel and upload again. Only the officer who uploaded it, for
    ``CARDSVC_IMPORT_DOWNLOAD_MINUTES`` after the upload."""
    download = imports.download_errors_file(session, actor, cipher, keeper, token, fmt=file_format, lang=lang)
    return Response(download.content, media_type=download.media_type, headers=download.headers)


@router.get("/members/{member_id}", response_model=MemberOut, responses={403: {}})
def get_member(
    member_id: Id,
    actor: OfficerDep,
    session: SessionDep,
    cipher: CipherDep,
    reveal: Annotated[bool, Query(description="show ID and phone numbers and the birth date in clear (pii "
                                              "permission; audited)")] = False,
) -> MemberOut:
    if reveal:
        identity = members.reveal_identity(session, actor, cipher, member_id)
        return MemberOut.of(identity.member, identity.pii)
    member = members.get_member(session, actor, member_id)
    return MemberOut.of(member, masked_view(member, actor))


@router.patch("/members/{member_id}", response_model=MemberOut)
def update_member(member_id: Id, body: MemberUpdate, actor: OfficerDep, session: SessionDep, cipher: CipherDep
                  ) -> MemberOut:
    """Correct a member's data, or transfer her (``chapter_id``) to another chapter in your scope."""
    member, warnings = members.update_member(session, actor, cipher, member_id, body.model_dump(exclude_unset=True))
    return MemberOut.of(member, masked_view(member, actor), warnings=_problems(warnings))


@router.post("/members/{member_id}/status", response_model=MemberOut)
def change_status(member_id: Id, body: MemberStatusChangeIn, actor: OfficerDep, session: SessionDep
                  ) -> MemberOut:
    member = members.change_status(session, actor, member_id, status=body.status, reason=body.reason,
                                   effective_on=body.effective_on)
    return MemberOut.of(member, masked_view(member, actor))


@router.post("/members/{member_id}/merge", response_model=MemberMergeOut)
def merge_member(member_id: Id, body: MemberMergeIn, actor: OfficerDep, session: SessionDep) -> MemberMergeOut:
    """Merge the record ``duplicate_id`` into this member (both in your scope; audited): her ID numbers, cards,
    check-ins, consents and links follow this member, her current card is superseded, and her record stays,
    closed, pointing here."""
    merge = merges.merge_members(session, actor, member_id, body.duplicate_id)
    return MemberMergeOut(survivor=MemberOut.of(merge.survivor, masked_view(merge.survivor, actor)),
                          duplicate=MemberOut.of(merge.duplicate, masked_view(merge.duplicate, actor)),
                          fields_taken=merge.fields_taken, moved=merge.moved,
                          superseded_card_id=merge.superseded_card_id, checkins_refused=len(merge.checkins_refused))


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
