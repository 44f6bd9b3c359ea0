"""Request and response bodies of the HTTP API (not database tables, not card payloads)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from cardsvc.db.models import Chapter, Consent, Event, Member, MemberStatusChange, Officer
from cardsvc.services.pii import PiiView

Text100 = Annotated[str, StringConstraints(max_length=100)]
Text200 = Annotated[str, StringConstraints(max_length=200)]
# Dates arrive as ISO text, "dd/mm/yyyy" or (birth dates only) a year; the service validates them.
DateText = Annotated[str, StringConstraints(max_length=20)]
INT64_MAX = 2**63 - 1
# Every id a request names (path, query or body): a positive 64-bit integer, as the database stores it. A larger
# number would overflow the driver's BIGINT parameter (a 500); this way it is a 422, or 404 in a path.
Id = Annotated[int, Field(ge=1, le=INT64_MAX)]
# A card's id: 8 random bytes in hex (any other path is 404, like an unknown card).
CardId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{16}$")]


def _refuse_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_nul(item)
    if isinstance(value, list):
        for item in value:
            _refuse_nul(item)
    return value


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, and so is a NUL character anywhere (databases reject it)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _refuse_nul(data)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    expires_at: datetime


class ChapterRef(BaseModel):
    id: int
    code: str
    name: str


class ChapterOut(BaseModel):
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    depth: int
    status: str
    merged_into_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, chapter: Chapter) -> ChapterOut:
        return cls.model_validate(chapter, from_attributes=True)


class ChapterLookupOut(BaseModel):
    chapter: ChapterOut
    requested_code: str
    via: Literal["code", "former_code", "merged"]


class ChapterCreate(Strict):
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    level: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    parent_id: Id | None = None


class ChapterUpdate(Strict):
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    level: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class ChapterMove(Strict):
    parent_id: Id


class ChapterMerge(Strict):
    into_id: Id


class MergeOut(BaseModel):
    source: ChapterOut
    target: ChapterOut
    members_moved: int
    children_moved: int
    officers_moved: int


class LevelOut(BaseModel):
    code: str
    name_vi: str
    name_en: str


class MemberCreate(Strict):
    chapter_id: Id
    full_name: Text100
    birth_date: DateText
    gender: Literal["female", "male"] = "female"
    id_number: Annotated[str, StringConstraints(max_length=20)] | None = None
    old_id_number: Annotated[str, StringConstraints(max_length=20)] | None = None
    phone: Annotated[str, StringConstraints(max_length=20)] | None = None
    join_date: DateText | None = None
    honorary: bool = False
    member_number: Annotated[str, StringConstraints(max_length=10)] | None = None


class MemberLookup(Strict):
    """A look-up by citizen ID (or old ID) number, or by phone number: exactly one of the two."""

    id_number: Annotated[str, StringConstraints(min_length=9, max_length=20)] | None = None
    phone: Annotated[str, StringConstraints(min_length=9, max_length=20)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MemberLookup:
        if (self.id_number is None) == (self.phone is None):
            raise ValueError("give either id_number or phone")
        return self


class MemberUpdate(Strict):
    chapter_id: Id | None = None
    full_name: Text100 | None = None
    birth_date: DateText | None = None
    gender: Literal["female", "male"] | None = None
    id_number: Annotated[str, StringConstraints(max_length=20)] | None = None
    old_id_number: Annotated[str, StringConstraints(max_length=20)] | None = None
    phone: Annotated[str, StringConstraints(max_length=20)] | None = None
    join_date: DateText | None = None
    honorary: bool | None = None


class MemberStatusChangeIn(Strict):
    status: Literal["active", "suspended", "left", "deceased"]
    reason: Text200 | None = None
    effective_on: date | None = None


class Problem(BaseModel):
    row: int | None = None
    field: str | None = None
    column: str | None = Field(default=None, description="in an import: the file's header and letter, 'Ngày sinh' (D)")
    code: str
    severity: str = "error"
    message: str
    message_vi: str | None = None


class MemberOut(BaseModel):
    id: int
    member_number: str
    full_name: str
    birth_date: date = Field(description="a viewer gets the year only (1 January, precision 'year')")
    birth_date_precision: Literal["day", "year"]
    gender: str
    id_number: str | None = Field(description="masked (e.g. **********89) unless revealed with ?reveal=true")
    id_number_masked: bool = Field(default=True, description="ID numbers, phone and birth date are masked by role")
    old_id_number: str | None
    phone: str | None = Field(description="masked (e.g. +84******678) unless revealed with ?reveal=true")
    chapter: ChapterRef
    join_date: date | None
    status: str
    status_reason: str | None
    status_changed_on: date | None
    honorary: bool
    created_at: datetime
    updated_at: datetime
    merged_into_id: int | None = Field(default=None, description="set when this record was merged into another")
    warnings: list[Problem] = []

    @classmethod
    def of(cls, member: Member, pii: PiiView, *, warnings: list[Problem] | None = None) -> MemberOut:
        """The member with her personal data as ``pii`` shows it (masked for a role, or revealed)."""
        return cls(
            id=member.id,
            member_number=member.member_number,
            full_name=member.full_name,
            birth_date=pii.birth_date,
            birth_date_precision=pii.birth_date_precision,
            gender=member.gender,
            id_number=pii.id_number,
            id_number_masked=not pii.revealed,
            old_id_number=pii.old_id_number,
            phone=pii.phone,
            chapter=ChapterRef(id=member.chapter.id, code=member.chapter.code, name=member.chapter.name),
            join_date=member.join_date,
            status=member.status,
            status_reason=member.status_reason,
            status_changed_on=member.status_changed_on,
            honorary=member.honorary,
            created_at=member.created_at,
            updated_at=member.updated_at,
            merged_into_id=member.merged_into_id,
            warnings=warnings or [],
        )


class MemberMergeIn(Strict):
    duplicate_id: Id


class MemberMergeOut(BaseModel):
    survivor: MemberOut
    duplicate: MemberOut
    fields_taken: list[str]
    moved: dict[str, int]
    superseded_card_id: str | None
    checkins_refused: int


class DuplicatePairOut(BaseModel):
    first: MemberOut
    second: MemberOut


class StatusChangeOut(BaseModel):
    id: int
    from_status: str | None
    to_status: str
    reason: str | None
    effective_on: date
    officer_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, change: MemberStatusChange) -> StatusChangeOut:
        return cls.model_validate(change, from_attributes=True)


class ConsentCreate(Strict):
    purpose: Literal["identity_verification", "registry_publication", "digital_card_messaging"]
    method: Literal["paper_form", "app"]
    evidence_ref: Text200 | None = None


class ConsentWithdraw(Strict):
    note: Text200 | None = None


class ConsentOut(BaseModel):
    id: int
    member_id: int
    purpose: str
    method: str
    evidence_ref: str | None
    recorded_by_id: int | None
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by_id: int | None
    withdrawal_note: str | None
    active: bool

    @classmethod
    def of(cls, consent: Consent) -> ConsentOut:
        return cls(
            id=consent.id, member_id=consent.member_id, purpose=consent.purpose, method=consent.method,
            evidence_ref=consent.evidence_ref, recorded_by_id=consent.recorded_by_id,
            recorded_at=consent.recorded_at, withdrawn_at=consent.withdrawn_at,
            withdrawn_by_id=consent.withdrawn_by_id, withdrawal_note=consent.withdrawal_note,
            active=consent.withdrawn_at is None,
        )


class OfficerCreate(Strict):
    username: Annotated[str, StringConstraints(min_length=3, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    role: Literal["admin", "officer", "viewer"]
    chapter_id: Id | None = None
    full_name: Text100 = ""
    permissions: list[Literal["pii"]] = []


class OfficerOut(BaseModel):
    id: int
    username: str
    full_name: str
    role: str
    chapter: ChapterRef | None
    permissions: list[str]
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, officer: Officer) -> OfficerOut:
        chapter = officer.chapter
        return cls(
            id=officer.id, username=officer.username, full_name=officer.full_name, role=officer.role,
            chapter=ChapterRef(id=chapter.id, code=chapter.code, name=chapter.name) if chapter else None,
            permissions=sorted(officer.permission_set), is_active=officer.is_active,
            last_login_at=officer.last_login_at, created_at=officer.created_at,
        )


class OfficerActive(Strict):
    is_active: bool


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(max_length=256)]
    new_password: Annotated[str, StringConstraints(max_length=256)]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_type: str
    actor_id: int | None
    actor_name: str
    action: str
    target_type: str
    target_id: str | None
    request_id: str | None
    details: dict[str, Any]


class MemberBriefOut(BaseModel):
    member_id: int
    member_number: str
    full_name: str
    chapter_code: str
    chapter_name: str


class ImportConflictOut(BaseModel):
    row: int
    code: str
    member: MemberBriefOut | None = Field(description="None when she is outside your scope")


class ProbableDuplicateOut(BaseModel):
    row: int
    registered: MemberBriefOut
    new_member_id: int | None


class ImportColumn(BaseModel):
    field: str
    header: str = Field(description="the column's header in the file")
    letter: str


class SkippedRows(BaseModel):
    reason: Literal["title", "column_numbers", "no_member_data", "total", "signature", "blank"]
    count: int
    rows: list[int] = Field(description="the first rows (none for blank rows)")
    message: str
    message_vi: str


class ProblemCount(Problem):
    count: int
    rows: list[int] = Field(description="the first rows with this problem")


class ErrorsFileLink(BaseModel):
    token: str = Field(description="GET /v1/members/import/errors/{token}: the file with an error column")
    expires_at: datetime


class ImportReportOut(BaseModel):
    dry_run: bool
    format: str
    encoding: str | None
    rows_total: int
    created: int
    updated: int
    unchanged: int
    failed: int
    header_row: int
    columns: list[ImportColumn]
    ignored_columns: list[str]
    skipped_rows: list[SkippedRows]
    problem_counts: list[ProblemCount] = Field(description="each kind of problem: how many rows, the first rows")
    problems_total: int
    problems: list[Problem] = Field(description="the first problems of each kind, by row")
    errors_file: ErrorsFileLink | None = Field(description="the upload, kept a few minutes when it has problems")
    conflicts: list[ImportConflictOut] = []
    duplicates: list[ProbableDuplicateOut] = []


class CardOut(BaseModel):
    card_id: str
    member_id: int
    member_number: str
    full_name: str
    chapter: ChapterRef
    version: int
    kid: str
    issued_on: date
    expires_on: date
    status: str
    status_reason: str | None
    status_changed_at: datetime
    status_list_id: int
    status_index: int
    created_at: datetime

    @classmethod
    def of(cls, card: Any) -> CardOut:
        member = card.member
        return cls(
            card_id=card.card_id, member_id=member.id, member_number=member.member_number,
            full_name=member.full_name,
            chapter=ChapterRef(id=member.chapter.id, code=member.chapter.code, name=member.chapter.name),
            version=card.version, kid=card.signing_key.kid, issued_on=card.issued_on, expires_on=card.expires_on,
            status=card.status, status_reason=card.status_reason, status_changed_at=card.status_changed_at,
            status_list_id=card.status_list_id, status_index=card.status_index, created_at=card.created_at,
        )


class CredentialOut(BaseModel):
    card_id: str
    qr_text: str = Field(description="digits only: what the QR code holds and a scanner types")
    credential_hex: str = Field(description="the COSE_Sign1 bytes, as written to NFC tags")
    size_bytes: int
    qr_version: int


class CardIssue(Strict):
    reason: Literal["issue", "lost", "damaged", "name_change", "other"] = "issue"


class CardNote(Strict):
    note: Text200 | None = None


class CardRevoke(Strict):
    reason: Literal["lost", "stolen", "left", "deceased", "key_compromised", "damaged", "other"]
    note: Text200 | None = None


class BatchIssue(Strict):
    subtree: bool = False


class JobFailureOut(BaseModel):
    member_id: int
    member_number: str
    code: str
    message: str
    message_vi: str


class JobOut(BaseModel):
    id: int
    kind: str
    status: str = Field(description="queued, running, done or failed (stopped: see error)")
    total: int
    done: int
    failed: int = Field(description="members who got no card; the job went on without them (see failures)")
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    failures: list[JobFailureOut] = Field(default=[], description="the first 200 members who got no card, and why")
    rate: float | None = Field(default=None, description="batch issuance: cards per second over its finished chunks "
                                                         "(all workers together); null until a chunk is finished")
    seconds_left: float | None = Field(default=None, description="batch issuance: seconds left at that rate "
                                                                 "(0 once finished; null while unknown)")

    @classmethod
    def of(cls, report: Any) -> JobOut:
        failures = [JobFailureOut.model_validate(f, from_attributes=True) for f in report.failures]
        return cls.model_validate(report.job, from_attributes=True).model_copy(update={
            "failures": failures, "rate": report.pace.rate, "seconds_left": report.pace.seconds_left})


class KeyOut(BaseModel):
    kid: str
    purpose: str
    algorithm: str
    status: str
    created_at: datetime
    retired_at: datetime | None


class KeyCreate(Strict):
    purpose: Literal["card", "trust"] = "card"
    algorithm: Literal["ed25519", "es256"] = "ed25519"


class KeyRetire(Strict):
    compromised: bool = False


class RetireOut(BaseModel):
    key: KeyOut
    cards_revoked: int
    reissue: list[CardOut]


class EventCreate(Strict):
    chapter_id: Id
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    venue: Text200 = ""
    starts_at: datetime
    ends_at: datetime
    checkin_opens_at: datetime | None = None
    checkin_closes_at: datetime | None = None
    eligibility: Literal["subtree", "invite", "all"] = "subtree"
    mode: Literal["entry", "entry_exit"] = "entry"
    allow_reentry: bool = False
    # Which cards pass (docs/card-format.md §8.6): any card, live preferred (printed cards with an ID check), live only.
    live_policy: Literal["any", "live_preferred", "live_required"] = "any"


class EventOut(BaseModel):
    id: int
    chapter: ChapterRef
    title: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    eligibility: str
    mode: str
    allow_reentry: bool
    status: str
    created_at: datetime
    live_policy: str

    @classmethod
    def of(cls, event: Event) -> EventOut:
        chapter = event.chapter
        # The rule fields are those of the one rules type (verification.entry.EntryRules), as the bundle's are.
        return cls(
            id=event.id, chapter=ChapterRef(id=chapter.id, code=chapter.code, name=chapter.name), title=event.title,
            venue=event.venue, starts_at=event.starts_at, ends_at=event.ends_at, created_at=event.created_at,
            **asdict(event.rules),
        )


class InviteIn(Strict):
    member_ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]


class InviteOut(BaseModel):
    invited: int


class StationCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class StationOut(BaseModel):
    id: int
    event_id: int
    name: str
    status: str
    created_at: datetime
    last_seen_at: datetime | None


class StationRegistered(BaseModel):
    station: StationOut
    provisioning_code: str = Field(description="one-time, expires in 24 hours; shown once")
    provisioning_url: str = Field(description="what the provisioning QR holds; `cardsvc station --setup` takes it")


class ProvisionIn(Strict):
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ProvisionOut(BaseModel):
    device_token: str
    station_id: int
    event_id: int
    server: str
    # The name the officer gave the station ("Cửa chính"): the check-in page shows it in its header.
    station_name: str


class CheckinIn(Strict):
    source: Literal["qr_scanner", "qr_camera", "nfc", "manual"]
    client_nonce: Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    payload: Annotated[str, StringConstraints(max_length=4096)] | None = None
    payload_base64: Annotated[str, StringConstraints(max_length=4096)] | None = None
    scanned_at: datetime | None = None
    member_id: Id | None = None
    manual_reason: Text200 | None = None
    # A scan the station decided offline, uploaded later, with the station's own verdict.
    offline: bool = False
    local_result: Literal["ok", "error"] | None = None
    local_reason: Annotated[str, StringConstraints(max_length=32)] | None = None


class FirstEntryOut(BaseModel):
    at: datetime
    station_id: int | None
    station_name: str | None


class CheckinMember(BaseModel):
    id: int
    full_name: str
    member_number: str
    chapter: ChapterRef
    photo_url: str | None = None


class CheckinOut(BaseModel):
    result: Literal["ok", "error"]
    reason: str | None
    checkin_id: int
    direction: str
    member: CheckinMember | None
    first_checkin: FirstEntryOut | None
    replayed: bool
    received_at: datetime
    # Set when a station let the member in offline and the server refuses the scan (see services.checkins).
    conflict: Literal["accepted_at_two_stations", "accepted_after_revocation", "accepted_but_refused"] | None = None
    # The scan was a live code (docs/card-format.md §8); a printed card let in at a live_preferred event is to be
    # compared with an identity document (id_check). Both false on a replayed answer.
    live: bool = False
    id_check: bool = False


class NfcWriteIn(Strict):
    card_id: CardId
    lock: bool = False


class NfcWriteOut(BaseModel):
    id: int
    station_id: int
    card_id: str
    lock: bool
    status: Literal["pending", "done", "failed"]
    requested_by_id: int | None
    requested_at: datetime
    completed_at: datetime | None
    error: str | None
    tag_uid: str | None


class DeviceNfcWrite(BaseModel):
    """A pending write as the station sees it: the credential to write (base64 of the raw bytes)."""

    id: int
    card_id: str
    lock: bool
    credential_base64: str
    requested_at: datetime


class NfcWriteResultIn(Strict):
    ok: bool
    error: Text200 | None = None
    uid: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9a-fA-F]*$")] | None = None
