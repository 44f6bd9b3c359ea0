"""Two workers share one identity sync run on PostgreSQL: every item is sent exactly once, none stays claimed.

The workers are threads with their own engines (so their own connections and transactions) on a dedicated database
(``<test database>_identity_race`` beside the test database) holding committed data, so the ``FOR UPDATE SKIP LOCKED``
claims really compete; the rolled-back test transactions are not involved.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from cardsvc.db.models import AuditEntry, IdentitySyncItem
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.demo import registry as demo_registry
from cardsvc.security import PiiCipher
from cardsvc.services import chapters, consents, members
from cardsvc.services.context import system_actor
from cardsvc.services.identity import gateway as identity_gateway
from cardsvc.services.identity import sync as identity_sync
from cardsvc.settings import Settings
from integrations.population import CallContext, PersonRecord, StubRegistry, VerifyRequest, VerifyResult
from tests.conftest import TEST_KEK, TEST_SECRET, id_number_for
from tests.server.servers import fresh_postgres
from tests.server.test_identity_sync import CountingRegistry

pytestmark = pytest.mark.postgres_only

MEMBERS = 60
SYSTEM = system_actor("identity-race-test")
GIVEN = ("Nguyễn Thị Lan", "Trần Thị Mai", "Lê Thị Hoa", "Phạm Thu Hà", "Võ Ngọc Hạnh")


class WorkerTally(CountingRegistry):
    """Also remembers which worker thread sent each verification."""

    def __init__(self, inner: StubRegistry) -> None:
        super().__init__(inner)
        self.by_thread: Counter[str] = Counter()

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        result = super().verify_identity(context, request)
        with self._lock:
            self.by_thread[threading.current_thread().name] += 1
        return result


@pytest.fixture
def race_engine(database_url: str) -> Iterator[Engine]:
    # Named after the test database, so that two suites on one server (CI and a developer's run) never share it.
    _, engine = fresh_postgres(database_url, f"{make_url(database_url).database}_identity_race")
    yield engine
    engine.dispose()


def test_two_workers_process_every_item_exactly_once(race_engine: Engine) -> None:
    settings = Settings(environment="test", database_url=race_engine.url.render_as_string(hide_password=False),
                        secret_key=TEST_SECRET, key_encryption_key=TEST_KEK, _env_file=None)  # type: ignore[call-arg]
    cipher = PiiCipher.from_settings(settings)
    factory = make_session_factory(race_engine)
    records: list[PersonRecord] = []
    with factory() as session:
        central = chapters.create_chapter(session, SYSTEM, code="R-TW", name="Trung ương", level="central",
                                          parent_id=None)
        branch = chapters.create_chapter(session, SYSTEM, code="R-01", name="Chi hội", level="branch",
                                         parent_id=central.id)
        for n in range(MEMBERS):
            birth = date(1970 + n % 30, 1 + n % 12, 1 + n % 28)
            member, _ = members.create_member(session, SYSTEM, cipher, chapter_id=branch.id, fields={
                "full_name": GIVEN[n % len(GIVEN)], "birth_date": birth,
                "gender": "female", "id_number": id_number_for(birth)})
            consents.record_consent(session, SYSTEM, member.id, purpose="identity_verification",
                                    method="paper_form", evidence_ref=None)
            record = demo_registry.member_person_record(member, cipher)
            assert record is not None
            records.append(record)
        run_id = identity_sync.start_sync(session, SYSTEM, chapter_id=None, force=False, reverify_days=180).id

    # A little latency per call makes the two workers interleave.
    tally = WorkerTally(StubRegistry(records, synthetic=0, latency=0.003))
    gateway = identity_gateway.RegistryGateway.from_settings(settings, tally)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []
    engines: list[Engine] = []

    def work(name: str) -> None:
        engine = make_engine(settings.database_url)
        engines.append(engine)
        barrier.wait()
        try:
            identity_sync.run_sync(make_session_factory(engine), gateway, cipher, run_id,
                              identity_sync.SyncOptions(worker=name, batch_size=4))
        except BaseException as exc:  # Reported by the assertion below.
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(name,), name=name) for name in ("worker-a", "worker-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()

    assert not failures
    assert len(tally.sent) == MEMBERS and set(tally.sent.values()) == {1}
    assert tally.by_thread["worker-a"] > 0 and tally.by_thread["worker-b"] > 0
    with factory() as session:
        statuses = dict(session.execute(select(IdentitySyncItem.status, func.count())
                                        .where(IdentitySyncItem.run_id == run_id)
                                        .group_by(IdentitySyncItem.status)).all())
        assert statuses == {"done": MEMBERS}
        summary = identity_sync.run_summary(session, SYSTEM, run_id)
        assert summary.status == "done" and summary.outcomes == {"matched": MEMBERS}
        closed = session.scalar(select(func.count()).where(AuditEntry.action == "identity.sync_done",
                                                           AuditEntry.target_id == str(run_id)))
        assert closed == 1
