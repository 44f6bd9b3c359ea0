"""Value types exchanged with the national population registry (DOMAIN.md §7).

All types are frozen dataclasses with no behaviour beyond validation and small conveniences, so they can cross
thread and process boundaries and be compared in tests. ID numbers are kept as strings of digits and never
appear in ``repr`` output: :class:`PersonRecord`, requests and facts mask them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from integrations.idnumber import mask_id_number

__all__ = [
    "PURPOSE_OPERATIONS",
    "REQUEST_ID_MAX_LENGTH",
    "BatchState",
    "BatchStatus",
    "BirthDate",
    "CallContext",
    "FieldMatch",
    "Gender",
    "LookupRequest",
    "MembershipFact",
    "MembershipStatus",
    "Notification",
    "NotificationKind",
    "Operation",
    "Outcome",
    "PersonName",
    "PersonRecord",
    "Purpose",
    "VerifyRequest",
    "VerifyResult",
]

REQUEST_ID_MAX_LENGTH = 40

Gender = Literal["female", "male"]


class Purpose(StrEnum):
    """Why the union calls the registry. Every call names one; the registry allows each operation only for some."""

    IDENTITY_VERIFICATION = "identity_verification"
    """Confirm that a member's ID number, name and birth date belong together (verify, batch verify)."""
    RECORD_CORRECTION = "record_correction"
    """The member asked to correct her record and consented to a look-up of her registry data."""
    MEMBERSHIP_PUBLICATION = "membership_publication"
    """The member consented to her membership being shown in the national system (publish, withdraw)."""
    CHANGE_MONITORING = "change_monitoring"
    """Receive registry events (death, change of name or ID number) to open officer reviews."""


class Operation(StrEnum):
    """Registry operations, named as on the wire (see ``fake_server``)."""

    VERIFY = "XacThucThongTinCongDan"
    LOOKUP = "TraCuuThongTinCongDan"
    SUBMIT_BATCH = "GuiYeuCauLo"
    BATCH_STATUS = "GetRequestStatus"
    BATCH_RESULT = "GetRequestResult"
    PUBLISH_MEMBERSHIP = "CungCapThongTinHoiVien"
    WITHDRAW_MEMBERSHIP = "RutThongTinHoiVien"
    NOTIFICATIONS = "LayThongBaoThayDoi"


_VERIFY_PURPOSES = frozenset({Purpose.IDENTITY_VERIFICATION, Purpose.RECORD_CORRECTION})

PURPOSE_OPERATIONS: Mapping[Operation, frozenset[Purpose]] = MappingProxyType(
    {
        Operation.VERIFY: _VERIFY_PURPOSES,
        Operation.SUBMIT_BATCH: _VERIFY_PURPOSES,
        Operation.BATCH_STATUS: _VERIFY_PURPOSES,
        Operation.BATCH_RESULT: _VERIFY_PURPOSES,
        # A look-up returns the whole registry record, so it is allowed only when the member asked for it.
        Operation.LOOKUP: frozenset({Purpose.RECORD_CORRECTION}),
        Operation.PUBLISH_MEMBERSHIP: frozenset({Purpose.MEMBERSHIP_PUBLICATION}),
        Operation.WITHDRAW_MEMBERSHIP: frozenset({Purpose.MEMBERSHIP_PUBLICATION}),
        Operation.NOTIFICATIONS: frozenset({Purpose.CHANGE_MONITORING}),
    }
)
"""Which purposes the registry accepts for each operation (enforced by the registry, mirrored by the stub)."""


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who calls, for which procedure and why: sent with every call (``MaYeuCau``, ``MaDVC`` …).

    Args:
        request_id: ``MaYeuCau``, unique per call, at most 40 characters.
        procedure_code: ``MaDVC``, the public-service procedure the call belongs to.
        service_code: ``MaTichHop``, the integration (service) code granted to the union.
        agency_code: ``MaDonVi``, the calling agency (union chapter) code.
        officer_code: ``MaCanBo``, the named officer responsible for the call.
        purpose: the declared purpose; the registry refuses operations the purpose does not cover.

    Raises:
        ValueError: an empty field or a request id longer than 40 characters.
    """

    request_id: str
    procedure_code: str
    service_code: str
    agency_code: str
    officer_code: str
    purpose: Purpose

    def __post_init__(self) -> None:
        for name in ("request_id", "procedure_code", "service_code", "agency_code", "officer_code"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"CallContext.{name} must be a non-empty string")
        if len(self.request_id) > REQUEST_ID_MAX_LENGTH:
            raise ValueError(f"CallContext.request_id must be at most {REQUEST_ID_MAX_LENGTH} characters")
        object.__setattr__(self, "purpose", Purpose(self.purpose))

    @staticmethod
    def new_request_id() -> str:
        """A fresh random request id (32 hex characters)."""
        return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A date of birth, or only its year (common in old records: ``NgayThangNamSinh`` = ``yyyy``)."""

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if (self.month is None) != (self.day is None):
            raise ValueError("BirthDate needs both month and day, or neither")
        if self.month is not None and self.day is not None:
            date(self.year, self.month, self.day)  # Raises ValueError for impossible dates.
        elif not 1 <= self.year <= 9999:
            raise ValueError("BirthDate year out of range")

    @classmethod
    def of(cls, value: date) -> BirthDate:
        """The full date ``value``."""
        return cls(value.year, value.month, value.day)

    @classmethod
    def parse(cls, text: str) -> BirthDate:
        """Parse ``yyyy-mm-dd`` or ``yyyy``. Raises ValueError."""
        if len(text) == 4 and text.isascii() and text.isdigit():
            return cls(int(text))
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            return cls.of(date.fromisoformat(text))
        raise ValueError("birth date must be yyyy-mm-dd or yyyy")

    @property
    def year_only(self) -> bool:
        """True when only the year is known."""
        return self.month is None

    def as_date(self) -> date | None:
        """The full date, or None when only the year is known."""
        if self.month is None or self.day is None:
            return None
        return date(self.year, self.month, self.day)

    def isoformat(self) -> str:
        """``yyyy-mm-dd`` or ``yyyy`` (the wire form)."""
        full = self.as_date()
        return full.isoformat() if full else f"{self.year:04d}"


@dataclass(frozen=True, slots=True)
class PersonName:
    """A name as the registry returns it: family name (``Ho``), middle name(s) (``ChuDem``), given name (``Ten``)."""

    family: str
    middle: str
    given: str

    @property
    def full(self) -> str:
        """Family, middle and given name joined by single spaces (empty parts skipped)."""
        return " ".join(" ".join(part.split()) for part in (self.family, self.middle, self.given) if part.strip())

    @classmethod
    def split(cls, full_name: str) -> PersonName:
        """Split ``"Nguyễn Thị Phương Thảo"`` into family ``Nguyễn``, middle ``Thị Phương``, given ``Thảo``."""
        words = full_name.split()
        if not words:
            return cls("", "", "")
        if len(words) == 1:
            return cls("", "", words[0])
        return cls(words[0], " ".join(words[1:-1]), words[-1])


def _masked(id_number: str | None) -> str:
    return mask_id_number(id_number) if id_number else "None"


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """What the registry knows about a citizen (returned by a look-up).

    ``old_id_number`` is the 9-digit CMND number when the registry still links one. ``death_date`` is set for
    deceased persons (``deceased`` is derived from it).
    """

    id_number: str
    name: PersonName
    birth_date: BirthDate
    gender: Gender | None = None
    old_id_number: str | None = None
    death_date: date | None = None

    @property
    def deceased(self) -> bool:
        """True when the registry recorded a death."""
        return self.death_date is not None

    def __repr__(self) -> str:
        return (
            f"PersonRecord(id_number={_masked(self.id_number)!r}, name={self.name!r}, birth_date={self.birth_date!r}, "
            f"gender={self.gender!r}, old_id_number={_masked(self.old_id_number)!r}, death_date={self.death_date!r})"
        )


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """Verify that a citizen ID number (12 digits) or old CMND number (9 digits) belongs to this person.

    ``full_name`` is as the member wrote it (family name first); ``gender`` is optional.
    """

    id_number: str
    full_name: str
    birth_date: BirthDate
    gender: Gender | None = None

    def __repr__(self) -> str:
        return (
            f"VerifyRequest(id_number={_masked(self.id_number)!r}, full_name={self.full_name!r}, "
            f"birth_date={self.birth_date!r}, gender={self.gender!r})"
        )


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """Look up the registry record of a citizen ID number (12 digits) or old CMND number (9 digits)."""

    id_number: str

    def __repr__(self) -> str:
        return f"LookupRequest(id_number={_masked(self.id_number)!r})"


class FieldMatch(StrEnum):
    """Result of comparing one field with the registry."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"
    """Not compared: the field was not sent, or the registry does not hold it, or the number is unknown."""


class Outcome(StrEnum):
    """Overall answer of a verification."""

    MATCHED = "matched"
    """Every compared field matched (gender may be unknown) and the person is alive."""
    MISMATCH = "mismatch"
    """The number exists but at least one field differs; see the per-field results."""
    NOT_FOUND = "not_found"
    """The registry does not know the number."""
    DECEASED = "deceased"
    """Every compared field matched, and the registry recorded the person's death."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The registry's answer to a :class:`VerifyRequest`.

    Attributes:
        outcome: the overall answer.
        name, birth_date, gender: per-field results.
        name_diacritics_only: the name differs from the registry's only in diacritics (tone marks, đ/d,
            "Hoà"/"Hòa"): still a mismatch, but probably a typing issue an officer can fix.
        birth_year_only: only the year of birth was compared (one side knows only the year).
    """

    outcome: Outcome
    name: FieldMatch
    birth_date: FieldMatch
    gender: FieldMatch
    name_diacritics_only: bool = False
    birth_year_only: bool = False

    @classmethod
    def not_found(cls) -> VerifyResult:
        """The result for an unknown number: nothing compared."""
        return cls(Outcome.NOT_FOUND, FieldMatch.UNKNOWN, FieldMatch.UNKNOWN, FieldMatch.UNKNOWN)


class BatchState(StrEnum):
    """State of an asynchronous batch."""

    PENDING = "pending"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """State of a batch; ``results`` (in request order) is filled when it is done."""

    batch_id: str
    state: BatchState
    results: tuple[VerifyResult, ...] = ()


class MembershipStatus(StrEnum):
    """Membership status published to the registry."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class MembershipFact:
    """The only membership data published for a member who consented (DOMAIN.md §8: collect only what is needed).

    Attributes:
        id_number: the member's citizen ID number (12 digits), identifying whose fact it is.
        organisation_code: the union the person is a member of.
        chapter_code: the member's chapter.
        join_date: date she joined the union.
        status: membership status.
        card_id: her current card id, or None when she has no valid card.
        card_valid_from, card_valid_until: validity of that card.
    """

    id_number: str
    organisation_code: str
    chapter_code: str
    join_date: date
    status: MembershipStatus
    card_id: str | None = None
    card_valid_from: date | None = None
    card_valid_until: date | None = None

    def __repr__(self) -> str:
        return (
            f"MembershipFact(id_number={_masked(self.id_number)!r}, organisation_code={self.organisation_code!r}, "
            f"chapter_code={self.chapter_code!r}, join_date={self.join_date!r}, status={self.status!r}, "
            f"card_id={self.card_id!r}, card_valid_from={self.card_valid_from!r}, "
            f"card_valid_until={self.card_valid_until!r})"
        )


class NotificationKind(StrEnum):
    """Registry events the service turns into officer reviews."""

    DEATH = "death"
    NAME_CHANGE = "name_change"
    ID_NUMBER_CHANGE = "id_number_change"


@dataclass(frozen=True, slots=True)
class Notification:
    """One registry event.

    Attributes:
        notification_id: unique and stable; process each at most once.
        kind: what happened.
        id_number: the citizen's ID number the event is about (the old one for an ID number change).
        occurred_on: date of the event.
        new_name: for a name change.
        new_id_number: for an ID number change.
    """

    notification_id: str
    kind: NotificationKind
    id_number: str
    occurred_on: date
    new_name: PersonName | None = None
    new_id_number: str | None = field(default=None)

    def __repr__(self) -> str:
        return (
            f"Notification(notification_id={self.notification_id!r}, kind={self.kind!r}, "
            f"id_number={_masked(self.id_number)!r}, occurred_on={self.occurred_on!r}, new_name={self.new_name!r}, "
            f"new_id_number={_masked(self.new_id_number)!r})"
        )
