"""An in-process registry for tests, demos and the fake HTTP server: :class:`StubRegistry`.

The stub holds a deterministic synthetic population (seeded RNG) plus the records it is given, and behaves like
the real registry including its trouble: names that differ only in diacritics or spacing, swapped middle names,
birth year only, deceased persons, unknown numbers, latency, random outages (deterministic by seed) and
throttling (token bucket → :class:`~integrations.population.errors.Throttled`).
"""

from __future__ import annotations

import random
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

from integrations.idnumber import PROVINCE_CODES
from integrations.population.errors import RejectedRequest, Throttled, Unavailable
from integrations.population.models import (
    PURPOSE_OPERATIONS,
    BatchState,
    BatchStatus,
    BirthDate,
    CallContext,
    FieldMatch,
    Gender,
    LookupRequest,
    MembershipFact,
    Notification,
    NotificationKind,
    Operation,
    Outcome,
    PersonName,
    PersonRecord,
    VerifyRequest,
    VerifyResult,
)
from integrations.population.names import compare_names, fold_diacritics
from integrations.population.ratelimit import TokenBucket

__all__ = ["MAX_BATCH_SIZE", "StubRegistry", "SyntheticPerson", "Trouble", "check_id_number", "verify_against"]

MAX_BATCH_SIZE = 1000

_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
           "Dương", "Lý", "Đinh", "Trương")
_MIDDLE_FEMALE = ("Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Phương", "Bảo", "Hồng", "Mỹ", "Diệu", "Khánh")
_GIVEN_FEMALE = ("Lan", "Hương", "Thảo", "Hạnh", "Trang", "Linh", "Hoa", "Mai", "Nhung", "Yến", "Ngân", "Hằng",
                 "Hòa", "Thủy", "Thúy", "Phượng", "Duyên", "Nga", "Vy", "Loan", "Tuyết", "Oanh")
_MIDDLE_MALE = ("Văn", "Đức", "Minh", "Quang", "Hữu", "Thanh", "Công", "Xuân")
_GIVEN_MALE = ("Hùng", "Dũng", "Nam", "Tuấn", "Long", "Sơn", "Hải", "Phong", "Thắng", "Khoa", "Hòa", "Thủy")
# Old (pre-1980s orthography) tone mark placement: same letters, different code points after NFC.
_OLD_TONE_PLACEMENT = {"Hòa": "Hoà", "Thủy": "Thuỷ", "Thúy": "Thuý"}
_PROVINCES = tuple(sorted(PROVINCE_CODES))


class Trouble(StrEnum):
    """What is awkward about a synthetic person, comparing the registry record and what a member would write."""

    NONE = "none"
    DIACRITICS_ONLY = "diacritics_only"
    SPACING = "spacing"
    UNICODE_FORM = "unicode_form"
    SWAPPED_MIDDLE = "swapped_middle"
    YEAR_ONLY = "year_only"
    DECEASED = "deceased"


@dataclass(frozen=True, slots=True)
class SyntheticPerson:
    """A synthetic registry record, the request a member would write for that person and the expected outcome."""

    record: PersonRecord
    trouble: Trouble
    claimed: VerifyRequest
    expected: Outcome


def check_id_number(id_number: str) -> str:
    """Return ``id_number`` if it is 12 digits (citizen ID) or 9 digits (old CMND).

    Raises:
        RejectedRequest: ``invalid_id_number``.
    """
    if not (id_number.isascii() and id_number.isdigit() and len(id_number) in (12, 9)):
        raise RejectedRequest("invalid_id_number", "the ID number must have 12 digits (SoDinhDanh) or 9 (SoCMND)")
    return id_number


def verify_against(record: PersonRecord | None, request: VerifyRequest) -> VerifyResult:
    """Compare a request with the registry's record the way the registry does (``None``: unknown number)."""
    if record is None:
        return VerifyResult.not_found()
    name = compare_names(request.full_name, record.name)
    year_only = request.birth_date.year_only or record.birth_date.year_only
    if year_only:
        birth = FieldMatch.MATCH if request.birth_date.year == record.birth_date.year else FieldMatch.MISMATCH
    else:
        birth = FieldMatch.MATCH if request.birth_date == record.birth_date else FieldMatch.MISMATCH
    if request.gender is None or record.gender is None:
        gender = FieldMatch.UNKNOWN
    else:
        gender = FieldMatch.MATCH if request.gender == record.gender else FieldMatch.MISMATCH
    identical = name.match == FieldMatch.MATCH and birth == FieldMatch.MATCH
    if identical and gender != FieldMatch.MISMATCH:
        # A death is reported only to a caller who already knows who the person is.
        outcome = Outcome.DECEASED if record.deceased else Outcome.MATCHED
    else:
        outcome = Outcome.MISMATCH
    return VerifyResult(outcome, name.match, birth, gender, name.diacritics_only, year_only)


def _random_date(rng: random.Random, year: int) -> date:
    start = date(year, 1, 1)
    return start + timedelta(days=rng.randrange((date(year + 1, 1, 1) - start).days))


def _make_person(rng: random.Random, used: set[str], today: date) -> SyntheticPerson:
    gender: Gender = "female" if rng.random() < 0.75 else "male"
    year = rng.randint(1940, 2007)
    birth = _random_date(rng, year)
    century_digit = (year // 100 - 19) * 2 + (1 if gender == "female" else 0)
    while True:
        id_number = f"{rng.choice(_PROVINCES)}{century_digit}{year % 100:02d}{rng.randrange(1_000_000):06d}"
        if id_number not in used:
            used.add(id_number)
            break
    old_id = f"{rng.randrange(10**8, 10**9)}" if rng.random() < 0.3 else None
    middle_pool, given_pool = (_MIDDLE_FEMALE, _GIVEN_FEMALE) if gender == "female" else (_MIDDLE_MALE, _GIVEN_MALE)
    middle = rng.sample(middle_pool, rng.choice((1, 1, 2)))
    name = PersonName(rng.choice(_FAMILY), " ".join(middle), rng.choice(given_pool))

    roll = rng.random()
    trouble = (
        Trouble.DECEASED if roll < 0.03
        else Trouble.YEAR_ONLY if roll < 0.07
        else Trouble.DIACRITICS_ONLY if roll < 0.11
        else Trouble.SPACING if roll < 0.14
        else Trouble.UNICODE_FORM if roll < 0.16
        else Trouble.SWAPPED_MIDDLE if roll < 0.19
        else Trouble.NONE
    )
    record_birth = BirthDate.of(birth)
    claimed_birth = record_birth
    claimed_name = name.full
    death_date: date | None = None
    expected = Outcome.MATCHED
    if trouble is Trouble.DECEASED:
        death_date = min(today, birth + timedelta(days=rng.randint(20 * 365, 80 * 365)))
        expected = Outcome.DECEASED
    elif trouble is Trouble.YEAR_ONLY:
        # Old records often hold only the year; sometimes it is the member who remembers only the year.
        if rng.random() < 0.5:
            record_birth = BirthDate(year)
        else:
            claimed_birth = BirthDate(year)
    elif trouble is Trouble.DIACRITICS_ONLY:
        if name.given in _OLD_TONE_PLACEMENT and rng.random() < 0.5:
            claimed_name = f"{name.family} {name.middle} {_OLD_TONE_PLACEMENT[name.given]}"
        else:
            claimed_name = unicodedata.normalize("NFC", "".join(
                ch for ch in unicodedata.normalize("NFD", claimed_name.replace("đ", "d").replace("Đ", "D"))
                if not unicodedata.combining(ch)
            ))
        if fold_diacritics(claimed_name) == claimed_name.casefold().replace(" ", ""):
            # Nothing to strip in a name without diacritics: give the person a family name that has some.
            name = replace(name, family="Nguyễn")
            claimed_name = "Nguyen " + claimed_name.split(" ", 1)[1]
        expected = Outcome.MISMATCH
    elif trouble is Trouble.SPACING:
        words = name.full.split()
        if rng.random() < 0.5:
            claimed_name = " " + "  ".join(words) + " "
        else:
            # A space lost between the last two words ("Phương Thảo" → "PhươngThảo").
            claimed_name = " ".join([*words[:-2], "".join(words[-2:])])
    elif trouble is Trouble.UNICODE_FORM:
        # NFD input (macOS, some keyboards) in capitals: still the same name.
        claimed_name = unicodedata.normalize("NFD", name.full.upper())
    elif trouble is Trouble.SWAPPED_MIDDLE:
        if len(middle) < 2:
            other = rng.choice([m for m in middle_pool if m != middle[0]])
            middle = [middle[0], other]
            name = replace(name, middle=" ".join(middle))
        claimed_name = f"{name.family} {middle[1]} {middle[0]} {name.given}"
        expected = Outcome.MISMATCH
    record = PersonRecord(id_number, name, record_birth, gender, old_id, death_date)
    claimed = VerifyRequest(id_number, claimed_name, claimed_birth, gender)
    return SyntheticPerson(record, trouble, claimed, expected)


@lru_cache(maxsize=8)
def _synthetic_population(seed: int, count: int) -> tuple[SyntheticPerson, ...]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible population, not a secret.
    used: set[str] = set()
    # A fixed "today" keeps the population identical whatever the date of the run.
    return tuple(_make_person(rng, used, date(2025, 12, 31)) for _ in range(count))


@dataclass(slots=True)
class _Batch:
    agency_code: str
    results: tuple[VerifyResult, ...]
    pending_polls_left: int


class StubRegistry:
    """A deterministic in-process :class:`~integrations.population.protocol.PopulationRegistry`.

    Args:
        records: records known exactly as given (they replace synthetic persons with the same number).
        seed: seeds the synthetic population and the outage sequence.
        synthetic: how many synthetic persons to generate.
        latency: seconds to ``sleep`` in every call.
        error_rate: probability that a call raises :class:`Unavailable` (the sequence is fixed by ``seed``).
        throttle_per_second: calls allowed a second (burst of the same size, at least 1); None: unlimited.
        clock, sleep: injected time.
        batch_pending_polls: how many polls of a batch answer "pending" before it is done.
        generated_notifications: how many death notifications to generate from synthetic deceased persons.

    ``latency`` and ``error_rate`` are plain attributes: tests may change them to simulate an outage and a recovery.
    """

    def __init__(
        self,
        records: Iterable[PersonRecord] = (),
        *,
        seed: int = 1,
        synthetic: int = 5000,
        latency: float = 0,
        error_rate: float = 0,
        throttle_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        batch_pending_polls: int = 1,
        generated_notifications: int = 3,
    ) -> None:
        self.latency = latency
        self.error_rate = error_rate
        self._seed = seed
        self._sleep = sleep
        self._batch_pending_polls = batch_pending_polls
        self._lock = threading.RLock()
        self._faults = random.Random(f"faults:{seed}")  # noqa: S311 - reproducible outages, not a secret.
        self._throttle = TokenBucket(throttle_per_second, clock=clock) if throttle_per_second else None
        self.synthetic_people = _synthetic_population(seed, synthetic)
        self._people: dict[str, PersonRecord] = {}
        self._old_numbers: dict[str, str] = {}
        for person in self.synthetic_people:
            self._add(person.record)
        for record in records:
            self._add(record)
        self._batches: dict[str, _Batch] = {}
        self._published: dict[tuple[str, str], MembershipFact] = {}
        self._notifications: list[Notification] = []
        deceased = [p.record for p in self.synthetic_people if p.record.death_date is not None]
        for record in deceased[:generated_notifications]:
            assert record.death_date is not None
            self._append_notification(NotificationKind.DEATH, record.id_number, record.death_date, None, None)

    # -- test helpers (not part of the Protocol) ---------------------------------------------------------------

    def sample(self, trouble: Trouble, index: int = 0) -> SyntheticPerson:
        """The ``index``-th synthetic person with this kind of trouble. Raises LookupError if there is none."""
        matching = [p for p in self.synthetic_people if p.trouble is trouble]
        if index >= len(matching):
            raise LookupError(f"no synthetic person #{index} with trouble {trouble.value}")
        return matching[index]

    def unknown_id_number(self) -> str:
        """A well-formed citizen ID number that no record holds."""
        rng = random.Random(f"unknown:{self._seed}")  # noqa: S311 - reproducible test data.
        while True:
            candidate = f"001{rng.choice('01')}{rng.randrange(40, 99)}{rng.randrange(1_000_000):06d}"
            if candidate not in self._people:
                return candidate

    def published_membership(self, id_number: str, organisation_code: str) -> MembershipFact | None:
        """The membership fact currently published for this person and organisation."""
        with self._lock:
            return self._published.get((id_number, organisation_code))

    def inject_notification(
        self,
        kind: NotificationKind,
        id_number: str,
        *,
        occurred_on: date,
        new_name: PersonName | None = None,
        new_id_number: str | None = None,
    ) -> Notification:
        """Record an event as the registry would: change the record, append the notification and return it."""
        with self._lock:
            record = self._people.get(id_number)
            if record is not None:
                if kind is NotificationKind.DEATH:
                    self._people[id_number] = replace(record, death_date=occurred_on)
                elif kind is NotificationKind.NAME_CHANGE and new_name is not None:
                    self._people[id_number] = replace(record, name=new_name)
                elif kind is NotificationKind.ID_NUMBER_CHANGE and new_id_number is not None:
                    del self._people[id_number]
                    self._add(replace(record, id_number=new_id_number))
            return self._append_notification(kind, id_number, occurred_on, new_name, new_id_number)

    # -- the Protocol ------------------------------------------------------------------------------------------

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        """See :meth:`PopulationRegistry.verify_identity`."""
        self._enter(context, Operation.VERIFY)
        with self._lock:
            return verify_against(self._find(check_id_number(request.id_number)), request)

    def lookup(self, context: CallContext, request: LookupRequest) -> PersonRecord | None:
        """See :meth:`PopulationRegistry.lookup`."""
        self._enter(context, Operation.LOOKUP)
        with self._lock:
            return self._find(check_id_number(request.id_number))

    def submit_batch(self, context: CallContext, requests: Sequence[VerifyRequest]) -> str:
        """See :meth:`PopulationRegistry.submit_batch`."""
        self._enter(context, Operation.SUBMIT_BATCH)
        if not requests:
            raise RejectedRequest("empty_batch", "a batch needs at least one request")
        if len(requests) > MAX_BATCH_SIZE:
            raise RejectedRequest("batch_too_large", f"a batch holds at most {MAX_BATCH_SIZE} requests")
        for request in requests:
            check_id_number(request.id_number)
        with self._lock:
            results = tuple(verify_against(self._find(r.id_number), r) for r in requests)
            batch_id = uuid.uuid4().hex
            self._batches[batch_id] = _Batch(context.agency_code, results, self._batch_pending_polls)
            return batch_id

    def poll_batch(self, context: CallContext, batch_id: str) -> BatchStatus:
        """See :meth:`PopulationRegistry.poll_batch`. Each poll counts towards ``batch_pending_polls``."""
        self._enter(context, Operation.BATCH_STATUS)
        with self._lock:
            batch = self._batch(context, batch_id)
            if batch.pending_polls_left > 0:
                batch.pending_polls_left -= 1
                return BatchStatus(batch_id, BatchState.PENDING)
            return BatchStatus(batch_id, BatchState.DONE, batch.results)

    def batch_result(self, context: CallContext, batch_id: str) -> tuple[VerifyResult, ...]:
        """The results of a finished batch without counting a poll (``GetRequestResult``).

        Raises:
            RejectedRequest: ``unknown_batch``, or ``batch_pending`` when it is not done.
        """
        self._enter(context, Operation.BATCH_RESULT)
        with self._lock:
            batch = self._batch(context, batch_id)
            if batch.pending_polls_left > 0:
                raise RejectedRequest("batch_pending", "the batch is not done yet")
            return batch.results

    def publish_membership(self, context: CallContext, fact: MembershipFact) -> None:
        """See :meth:`PopulationRegistry.publish_membership`."""
        self._enter(context, Operation.PUBLISH_MEMBERSHIP)
        if len(check_id_number(fact.id_number)) != 12:
            raise RejectedRequest("invalid_id_number", "membership is published under the 12-digit ID number")
        if fact.card_valid_from and fact.card_valid_until and fact.card_valid_until < fact.card_valid_from:
            raise RejectedRequest("invalid_fact", "the card validity ends before it starts")
        with self._lock:
            if fact.id_number not in self._people:
                raise RejectedRequest("unknown_citizen", "the registry does not know this ID number")
            self._published[(fact.id_number, fact.organisation_code)] = fact

    def withdraw_membership(self, context: CallContext, id_number: str, organisation_code: str) -> None:
        """See :meth:`PopulationRegistry.withdraw_membership`."""
        self._enter(context, Operation.WITHDRAW_MEMBERSHIP)
        check_id_number(id_number)
        with self._lock:
            self._published.pop((id_number, organisation_code), None)

    def notifications(
        self, context: CallContext, since_cursor: str | None, limit: int = 100
    ) -> tuple[list[Notification], str]:
        """See :meth:`PopulationRegistry.notifications`. Cursors are positions in the feed."""
        self._enter(context, Operation.NOTIFICATIONS)
        with self._lock:
            start = 0
            if since_cursor is not None:
                if not (since_cursor.isascii() and since_cursor.isdigit()) or int(since_cursor) > len(
                    self._notifications
                ):
                    raise RejectedRequest("invalid_cursor", "the cursor was not issued by this feed")
                start = int(since_cursor)
            if limit < 1:
                raise RejectedRequest("invalid_limit", "the limit must be at least 1")
            page = self._notifications[start : start + limit]
            return list(page), str(start + len(page))

    # -- internals ---------------------------------------------------------------------------------------------

    def _add(self, record: PersonRecord) -> None:
        self._people[record.id_number] = record
        if record.old_id_number:
            self._old_numbers[record.old_id_number] = record.id_number

    def _find(self, id_number: str) -> PersonRecord | None:
        if len(id_number) == 9:
            current = self._old_numbers.get(id_number)
            return self._people.get(current) if current else None
        return self._people.get(id_number)

    def _batch(self, context: CallContext, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        # Another agency's batch is reported as unknown: batch ids must not leak results across agencies.
        if batch is None or batch.agency_code != context.agency_code:
            raise RejectedRequest("unknown_batch", "no such batch")
        return batch

    def _append_notification(
        self,
        kind: NotificationKind,
        id_number: str,
        occurred_on: date,
        new_name: PersonName | None,
        new_id_number: str | None,
    ) -> Notification:
        notification = Notification(
            f"TB{self._seed:04d}{len(self._notifications) + 1:08d}", kind, id_number, occurred_on, new_name,
            new_id_number,
        )
        self._notifications.append(notification)
        return notification

    def _enter(self, context: CallContext, operation: Operation) -> None:
        """What the registry does before it looks at a request: latency, throttling, outages, purpose."""
        if self.latency > 0:
            self._sleep(self.latency)
        if self._throttle is not None:
            wait = self._throttle.try_take()
            if wait > 0:
                raise Throttled(wait)
        with self._lock:
            # Drawn on every call so the outage sequence depends only on the seed and the call count.
            draw = self._faults.random()
        if draw < self.error_rate:
            raise Unavailable("the population registry is temporarily unavailable")
        if context.purpose not in PURPOSE_OPERATIONS[operation]:
            raise RejectedRequest(
                "purpose_not_allowed", f"the purpose {context.purpose.value} does not allow {operation.value}"
            )
