"""One contract for every PopulationRegistry implementation (STYLE.md pattern 15).

Each test runs against the in-process ``StubRegistry`` and against ``HttpRegistry`` talking to the fake server
over a real socket (uvicorn in a background thread), both backed by a stub built with the same options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import httpx
import pytest

from integrations.idnumber import validate_citizen_id
from integrations.population import (
    BatchState,
    BirthDate,
    CallContext,
    FieldMatch,
    HttpRegistry,
    LookupRequest,
    MembershipFact,
    MembershipStatus,
    NotificationKind,
    Outcome,
    PersonName,
    PersonRecord,
    PopulationRegistry,
    Purpose,
    RegistryError,
    RegistrySettings,
    RejectedRequest,
    StubRegistry,
    Throttled,
    Trouble,
    Unavailable,
    VerifyRequest,
    make_http_client,
)
from integrations.population.fake_server import RunningFakeRegistry

# Records the service would pass in (its demo members), known exactly as given.
HOA = PersonRecord("001190000001", PersonName("Nguyễn", "Thị", "Hòa"), BirthDate(1990, 5, 1), "female")
THAO = PersonRecord(
    "079185123456", PersonName("Trần", "Thị Phương", "Thảo"), BirthDate(1985), "female", old_id_number="025123456"
)
DEMO_RECORDS = (HOA, THAO)


@dataclass
class Harness:
    """The implementation under test and the stub behind it (to set up and inspect state)."""

    registry: PopulationRegistry
    stub: StubRegistry


MakeHarness = Callable[..., Harness]


def context(purpose: Purpose = Purpose.IDENTITY_VERIFICATION, agency_code: str = "HPN-001") -> CallContext:
    return CallContext(
        request_id=CallContext.new_request_id(),
        procedure_code="HV-XACTHUC",
        service_code="HLHPN-DANCU",
        agency_code=agency_code,
        officer_code="CB0001",
        purpose=purpose,
    )


@pytest.fixture(scope="session")
def fake_registry_server() -> Iterator[RunningFakeRegistry]:
    with RunningFakeRegistry(StubRegistry(synthetic=0)) as server:
        yield server


@pytest.fixture(params=["stub", "http"])
def make_harness(request: pytest.FixtureRequest) -> Iterator[MakeHarness]:
    clients: list[httpx.Client] = []

    def make(records: tuple[PersonRecord, ...] = DEMO_RECORDS, **stub_options: Any) -> Harness:
        stub_options.setdefault("synthetic", 600)
        stub = StubRegistry(records, **stub_options)
        if request.param == "stub":
            return Harness(stub, stub)
        server: RunningFakeRegistry = request.getfixturevalue("fake_registry_server")
        server.stub = stub
        credentials = server.credentials
        settings = RegistrySettings(
            base_url=server.base_url,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            app_name=credentials.app_name,
            partner_code=credentials.partner_code,
            agency_code="HPN-001",
            service_code="HLHPN-DANCU",
            timeout=5.0,
            max_retries=0,  # The contract sees each registry error as it is; retries are the adapter's own tests.
            rate_limit_per_second=None,
        )
        client = make_http_client(settings)
        clients.append(client)
        return Harness(HttpRegistry(client, settings, sleep=lambda _: None), stub)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def harness(make_harness: MakeHarness) -> Harness:
    return make_harness()


# -- verify --------------------------------------------------------------------------------------------------------


def test_exact_match(harness: Harness) -> None:
    person = harness.stub.sample(Trouble.NONE)
    result = harness.registry.verify_identity(context(), person.claimed)
    assert result.outcome is Outcome.MATCHED
    assert (result.name, result.birth_date, result.gender) == (FieldMatch.MATCH,) * 3
    assert not result.name_diacritics_only and not result.birth_year_only


def test_records_passed_in_are_known_as_given(harness: Harness) -> None:
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1), "female")
    assert harness.registry.verify_identity(context(), request).outcome is Outcome.MATCHED


def test_mismatch_reports_each_field(harness: Harness) -> None:
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 2), "male")
    result = harness.registry.verify_identity(context(), request)
    assert result.outcome is Outcome.MISMATCH
    assert result.name is FieldMatch.MATCH
    assert (result.birth_date, result.gender) == (FieldMatch.MISMATCH, FieldMatch.MISMATCH)


def test_gender_not_sent_is_unknown_and_still_matches(harness: Harness) -> None:
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1))
    result = harness.registry.verify_identity(context(), request)
    assert (result.outcome, result.gender) == (Outcome.MATCHED, FieldMatch.UNKNOWN)


@pytest.mark.parametrize("claimed", ["Nguyễn Thị Hoà", "Nguyen Thi Hoa", "Nguyễn Thi Hòa", "Nguyên Thị Hòa"])
def test_diacritics_only_difference_is_a_flagged_mismatch(harness: Harness, claimed: str) -> None:
    result = harness.registry.verify_identity(context(), VerifyRequest(HOA.id_number, claimed, BirthDate(1990, 5, 1)))
    assert result.outcome is Outcome.MISMATCH
    assert result.name is FieldMatch.MISMATCH
    assert result.name_diacritics_only
    assert result.birth_date is FieldMatch.MATCH


def test_synthetic_diacritics_trouble(harness: Harness) -> None:
    person = harness.stub.sample(Trouble.DIACRITICS_ONLY)
    result = harness.registry.verify_identity(context(), person.claimed)
    assert (result.outcome, result.name, result.name_diacritics_only) == (Outcome.MISMATCH, FieldMatch.MISMATCH, True)


@pytest.mark.parametrize(
    "claimed",
    ["  Nguyễn   Thị Hòa ", "Nguyễn Thị\u00a0Hòa", "NGUYỄN THỊ HÒA", "nguyễn thị hòa", "Nguyễn ThịHòa",
     "Nguye\u0302\u0303n Thi\u0323 Ho\u0300a"],
)
def test_case_spacing_and_unicode_form_do_not_matter(harness: Harness, claimed: str) -> None:
    result = harness.registry.verify_identity(context(), VerifyRequest(HOA.id_number, claimed, BirthDate(1990, 5, 1)))
    assert (result.outcome, result.name) == (Outcome.MATCHED, FieldMatch.MATCH)


@pytest.mark.parametrize("trouble", [Trouble.SPACING, Trouble.UNICODE_FORM])
def test_synthetic_spacing_and_unicode_trouble_match(harness: Harness, trouble: Trouble) -> None:
    for index in range(3):
        person = harness.stub.sample(trouble, index)
        assert harness.registry.verify_identity(context(), person.claimed).outcome is Outcome.MATCHED


def test_swapped_middle_names_are_a_mismatch(harness: Harness) -> None:
    request = VerifyRequest(THAO.id_number, "Trần Phương Thị Thảo", BirthDate(1985))
    result = harness.registry.verify_identity(context(), request)
    assert (result.outcome, result.name, result.name_diacritics_only) == (Outcome.MISMATCH, FieldMatch.MISMATCH, False)
    person = harness.stub.sample(Trouble.SWAPPED_MIDDLE)
    assert harness.registry.verify_identity(context(), person.claimed).name is FieldMatch.MISMATCH


def test_registry_holding_only_the_birth_year(harness: Harness) -> None:
    request = VerifyRequest(THAO.id_number, "Trần Thị Phương Thảo", BirthDate(1985, 7, 14))
    result = harness.registry.verify_identity(context(), request)
    assert (result.outcome, result.birth_date, result.birth_year_only) == (Outcome.MATCHED, FieldMatch.MATCH, True)
    wrong_year = replace(request, birth_date=BirthDate(1986, 7, 14))
    assert harness.registry.verify_identity(context(), wrong_year).birth_date is FieldMatch.MISMATCH


def test_request_with_only_the_birth_year(harness: Harness) -> None:
    year_only = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990))
    result = harness.registry.verify_identity(context(), year_only)
    assert (result.outcome, result.birth_year_only) == (Outcome.MATCHED, True)
    for index in range(4):
        person = harness.stub.sample(Trouble.YEAR_ONLY, index)
        result = harness.registry.verify_identity(context(), person.claimed)
        assert (result.outcome, result.birth_year_only) == (Outcome.MATCHED, True)


def test_deceased(harness: Harness) -> None:
    person = harness.stub.sample(Trouble.DECEASED)
    result = harness.registry.verify_identity(context(), person.claimed)
    assert result.outcome is Outcome.DECEASED
    assert (result.name, result.birth_date) == (FieldMatch.MATCH, FieldMatch.MATCH)


def test_death_is_not_revealed_to_a_caller_with_the_wrong_identity(harness: Harness) -> None:
    person = harness.stub.sample(Trouble.DECEASED)
    wrong = replace(person.claimed, full_name="Someone Else")
    assert harness.registry.verify_identity(context(), wrong).outcome is Outcome.MISMATCH


def test_unknown_number_is_not_found(harness: Harness) -> None:
    request = VerifyRequest(harness.stub.unknown_id_number(), "Nguyễn Thị Hòa", BirthDate(1990, 5, 1))
    result = harness.registry.verify_identity(context(), request)
    assert result.outcome is Outcome.NOT_FOUND
    assert (result.name, result.birth_date, result.gender) == (FieldMatch.UNKNOWN,) * 3


def test_old_cmnd_number_is_verified(harness: Harness) -> None:
    request = VerifyRequest("025123456", "Trần Thị Phương Thảo", BirthDate(1985))
    assert harness.registry.verify_identity(context(), request).outcome is Outcome.MATCHED


@pytest.mark.parametrize("bad", ["12345", "0011900000012", "00119000000a", "0011900 00001", ""])
def test_malformed_id_number_is_rejected(harness: Harness, bad: str) -> None:
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.verify_identity(context(), VerifyRequest(bad, "Nguyễn Thị Hòa", BirthDate(1990)))
    assert caught.value.code == "invalid_id_number"
    assert not caught.value.retryable


# -- look-up -------------------------------------------------------------------------------------------------------


def test_lookup_allowed_for_record_correction(harness: Harness) -> None:
    assert harness.registry.lookup(context(Purpose.RECORD_CORRECTION), LookupRequest(THAO.id_number)) == THAO
    assert harness.registry.lookup(context(Purpose.RECORD_CORRECTION), LookupRequest("025123456")) == THAO
    deceased = harness.stub.sample(Trouble.DECEASED).record
    found = harness.registry.lookup(context(Purpose.RECORD_CORRECTION), LookupRequest(deceased.id_number))
    assert found == deceased and found.deceased


def test_lookup_of_unknown_number_is_none(harness: Harness) -> None:
    unknown = LookupRequest(harness.stub.unknown_id_number())
    assert harness.registry.lookup(context(Purpose.RECORD_CORRECTION), unknown) is None


@pytest.mark.parametrize("purpose", [Purpose.IDENTITY_VERIFICATION, Purpose.MEMBERSHIP_PUBLICATION])
def test_lookup_refused_for_other_purposes(harness: Harness, purpose: Purpose) -> None:
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.lookup(context(purpose), LookupRequest(THAO.id_number))
    assert caught.value.code == "purpose_not_allowed"


# -- batches -------------------------------------------------------------------------------------------------------


def test_batch_submit_and_poll(make_harness: MakeHarness) -> None:
    h = make_harness(batch_pending_polls=2)
    requests = [
        VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1)),
        VerifyRequest(h.stub.unknown_id_number(), "Lê Thị Lan", BirthDate(1970)),
        VerifyRequest(THAO.id_number, "Tran Thi Phuong Thao", BirthDate(1985)),
    ]
    batch_id = h.registry.submit_batch(context(), requests)
    assert h.registry.poll_batch(context(), batch_id).state is BatchState.PENDING
    assert h.registry.poll_batch(context(), batch_id).state is BatchState.PENDING
    status = h.registry.poll_batch(context(), batch_id)
    assert (status.batch_id, status.state) == (batch_id, BatchState.DONE)
    assert [r.outcome for r in status.results] == [Outcome.MATCHED, Outcome.NOT_FOUND, Outcome.MISMATCH]
    assert status.results[2].name_diacritics_only


def test_batch_is_unknown_to_other_agencies_and_to_guessers(harness: Harness) -> None:
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990))
    batch_id = harness.registry.submit_batch(context(), [request])
    for ctx, bid in ((context(agency_code="HPN-999"), batch_id), (context(), "no-such-batch")):
        with pytest.raises(RejectedRequest) as caught:
            harness.registry.poll_batch(ctx, bid)
        assert caught.value.code == "unknown_batch"


def test_batch_with_a_malformed_number_is_rejected_whole(harness: Harness) -> None:
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.submit_batch(context(), [VerifyRequest("123", "A B", BirthDate(1990))])
    assert caught.value.code == "invalid_id_number"
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.submit_batch(context(), [])
    assert caught.value.code == "empty_batch"


# -- membership publication ----------------------------------------------------------------------------------------

FACT = MembershipFact(
    id_number=HOA.id_number,
    organisation_code="HLHPNVN",
    chapter_code="HN-001-07",
    join_date=date(2015, 3, 8),
    status=MembershipStatus.ACTIVE,
    card_id="C0000042",
    card_valid_from=date(2025, 1, 1),
    card_valid_until=date(2029, 12, 31),
)


def test_publish_and_withdraw_membership(harness: Harness) -> None:
    publication = context(Purpose.MEMBERSHIP_PUBLICATION)
    harness.registry.publish_membership(publication, FACT)
    assert harness.stub.published_membership(HOA.id_number, "HLHPNVN") == FACT
    suspended = replace(FACT, status=MembershipStatus.SUSPENDED, card_id=None, card_valid_from=None,
                        card_valid_until=None)
    harness.registry.publish_membership(context(Purpose.MEMBERSHIP_PUBLICATION), suspended)
    assert harness.stub.published_membership(HOA.id_number, "HLHPNVN") == suspended
    harness.registry.withdraw_membership(context(Purpose.MEMBERSHIP_PUBLICATION), HOA.id_number, "HLHPNVN")
    assert harness.stub.published_membership(HOA.id_number, "HLHPNVN") is None
    # Withdrawing twice is harmless.
    harness.registry.withdraw_membership(context(Purpose.MEMBERSHIP_PUBLICATION), HOA.id_number, "HLHPNVN")


def test_publish_needs_a_known_citizen_and_the_publication_purpose(harness: Harness) -> None:
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.publish_membership(
            context(Purpose.MEMBERSHIP_PUBLICATION), replace(FACT, id_number=harness.stub.unknown_id_number())
        )
    assert caught.value.code == "unknown_citizen"
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.publish_membership(context(Purpose.IDENTITY_VERIFICATION), FACT)
    assert caught.value.code == "purpose_not_allowed"
    assert harness.stub.published_membership(HOA.id_number, "HLHPNVN") is None


# -- notifications -------------------------------------------------------------------------------------------------


def test_notification_feed_with_cursor(harness: Harness) -> None:
    monitoring = Purpose.CHANGE_MONITORING
    first, cursor = harness.registry.notifications(context(monitoring), None, limit=2)
    assert [n.kind for n in first] == [NotificationKind.DEATH] * 2
    deceased = [p.record for p in harness.stub.synthetic_people if p.record.deceased]
    assert [(n.id_number, n.occurred_on) for n in first] == [(r.id_number, r.death_date) for r in deceased[:2]]
    rest, cursor = harness.registry.notifications(context(monitoring), cursor)
    assert len(rest) == 1
    empty, same_cursor = harness.registry.notifications(context(monitoring), cursor)
    assert (empty, same_cursor) == ([], cursor)

    new_name = PersonName("Nguyễn", "Thị", "Hoà Bình")
    injected = harness.stub.inject_notification(
        NotificationKind.NAME_CHANGE, HOA.id_number, occurred_on=date(2026, 1, 5), new_name=new_name
    )
    changed = harness.stub.inject_notification(
        NotificationKind.ID_NUMBER_CHANGE, THAO.id_number, occurred_on=date(2026, 1, 6), new_id_number="079185654321"
    )
    latest, _ = harness.registry.notifications(context(monitoring), cursor)
    assert latest == [injected, changed]
    assert latest[0].new_name == new_name
    assert latest[1].new_id_number == "079185654321"
    # The registry itself changed: the old name no longer matches, the new number is known.
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1))
    assert harness.registry.verify_identity(context(), request).outcome is Outcome.MISMATCH
    moved = VerifyRequest("079185654321", "Trần Thị Phương Thảo", BirthDate(1985))
    assert harness.registry.verify_identity(context(), moved).outcome is Outcome.MATCHED


def test_notification_feed_refuses_foreign_cursors_and_other_purposes(harness: Harness) -> None:
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.notifications(context(Purpose.CHANGE_MONITORING), "999999")
    assert caught.value.code == "invalid_cursor"
    with pytest.raises(RejectedRequest) as caught:
        harness.registry.notifications(context(Purpose.IDENTITY_VERIFICATION), None)
    assert caught.value.code == "purpose_not_allowed"


# -- trouble: throttling and outages -------------------------------------------------------------------------------


def test_throttling_raises_throttled_with_retry_after(make_harness: MakeHarness) -> None:
    h = make_harness(throttle_per_second=0.5)
    request = VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990, 5, 1))
    assert h.registry.verify_identity(context(), request).outcome is Outcome.MATCHED
    with pytest.raises(Throttled) as caught:
        h.registry.verify_identity(context(), request)
    assert 0 < caught.value.retry_after <= 2
    assert caught.value.retryable


def test_outage_raises_unavailable(make_harness: MakeHarness) -> None:
    h = make_harness(error_rate=1.0)
    with pytest.raises(Unavailable) as caught:
        h.registry.verify_identity(context(), VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990)))
    assert caught.value.retryable and isinstance(caught.value, RegistryError)


def test_outages_follow_the_seed(make_harness: MakeHarness) -> None:
    def pattern(seed: int) -> list[bool]:
        h = make_harness(seed=seed, error_rate=0.5, synthetic=0)
        outcomes = []
        for _ in range(12):
            try:
                h.registry.verify_identity(context(), VerifyRequest(HOA.id_number, "Nguyễn Thị Hòa", BirthDate(1990)))
                outcomes.append(True)
            except Unavailable:
                outcomes.append(False)
        return outcomes

    assert pattern(7) == pattern(7)
    assert True in pattern(7) and False in pattern(7)


# -- the synthetic population itself (stub only) --------------------------------------------------------------------


def test_synthetic_population_is_valid_and_deterministic() -> None:
    people = StubRegistry(seed=3, synthetic=2000).synthetic_people
    assert people == StubRegistry(seed=3, synthetic=2000).synthetic_people
    assert people != StubRegistry(seed=4, synthetic=2000).synthetic_people
    assert len({p.record.id_number for p in people}) == len(people)
    for person in people:
        record = person.record
        assert validate_citizen_id(record.id_number, birth_year=record.birth_date.year, gender=record.gender)
        assert record.old_id_number is None or len(record.old_id_number) == 9
    assert {p.trouble for p in people} == set(Trouble)
    assert any("đ" in p.record.name.full.lower() for p in people)


def test_synthetic_claims_give_the_expected_outcome() -> None:
    stub = StubRegistry(seed=11, synthetic=1500)
    for person in stub.synthetic_people:
        assert stub.verify_identity(context(), person.claimed).outcome is person.expected, person
