"""The chunked batch-issuance engine (issue 18): chunks of member ids, bulk slots and inserts, one audit entry per
chunk, leases that another worker takes over, resumable and idempotent jobs, progress and pace."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cardsvc.db.base import utcnow
from cardsvc.db.models import AuditEntry, Card, Chapter, Job, JobChunk, Member, StatusList
from cardsvc.importing.rows import format_member_number
from cardsvc.normalize import given_name_sort_key, name_search_key
from cardsvc.security import PiiCipher
from cardsvc.services import card_batches, cards, chapters, jobs, keys, status_lists
from cardsvc.services.context import system_actor
from cardsvc.services.keys import KeyRing
from cardsvc.settings import Settings
from tests.conftest import BACKEND, PASSWORD, SYSTEM, TEST_KEK, TEST_SECRET, Tree, _session_for, login, make_member
from verification.crypto import verify_signature
from verification.format import parse_credential

pytestmark = pytest.mark.usefixtures("signing_keys")
ISSUE = {"validity_years": 5, "list_size": 4096}
GIVEN = ("Lan", "Hoa", "Mai", "Thảo", "Hương", "Hằng", "Nga", "Yến", "Linh", "Trang", "Phương", "Thu", "Hà", "Vân",
         "Ngọc", "Anh", "Dung", "Hạnh", "Loan", "Xuân")
NAMES = ("Lê Thị Hoa", "Lê Thị Mai", "Lê Thị Lan", "Trần Thị Thảo", "Phạm Thị Hằng")


def _members(db: Session, cipher: PiiCipher, tree: Tree) -> list[Member]:
    return [make_member(db, cipher, tree.branch_a, full_name=name) for name in NAMES]


def _run(db: Session, settings: Settings, job_id: int, **kwargs: object) -> Job:
    def factory() -> Session:
        return _session_for(db.connection())

    jobs.run_batch(factory, KeyRing(settings.kek), job_id, chunk_size=2, **ISSUE, **kwargs)  # type: ignore[arg-type]
    job = db.get_one(Job, job_id)
    db.refresh(job)
    return job


def test_chunks_issue_one_verifying_card_per_member_stored_exactly_as_signed(
        db: Session, tree: Tree, cipher: PiiCipher, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    members = _members(db, cipher, tree)
    signed: list[bytes] = []

    def recording(claims: object, signer: object) -> bytes:
        credential = cards.sign_credential(claims, signer)  # type: ignore[arg-type]
        signed.append(credential)
        return credential

    monkeypatch.setattr(card_batches, "sign_credential", recording)
    seen: list[tuple[int, int]] = []
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    job = _run(db, settings, job.id, progress=lambda done, total: seen.append((done, total)))
    assert (job.status, job.total, job.done, job.failed) == ("done", 5, 5, 0)
    assert seen == [(2, 5), (4, 5), (5, 5)]  # one step per committed chunk of 2
    chunks = db.scalars(select(JobChunk).where(JobChunk.job_id == job.id).order_by(JobChunk.id)).all()
    assert [(c.status, c.planned, c.issued) for c in chunks] == [("done", 2, 2), ("done", 2, 2), ("done", 1, 1)]
    issued = db.scalars(select(Card).where(Card.job_id == job.id)).all()
    assert sorted(c.member_id for c in issued) == sorted(m.id for m in members)
    assert sorted(c.credential for c in issued) == sorted(signed)  # the bytes exactly as signed
    for card in issued:
        parsed = parse_credential(card.credential)
        verify_signature(parsed, keys.algorithm_number(card.signing_key), keys.public_key_of(card.signing_key))
        assert (parsed.claims.status_list, parsed.claims.status_index) == (card.status_list_id, card.status_index)
        assert parsed.claims.card_id.hex() == card.card_id and card.status == "active"
        assert parsed.claims.display_name == card.member.full_name


def test_one_audit_entry_per_chunk_names_every_card(db: Session, tree: Tree, cipher: PiiCipher,
                                                    settings: Settings) -> None:
    _members(db, cipher, tree)
    job = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id)
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "card.batch_issue")).all()
    assert len(entries) == 3
    named = [tuple(item) for entry in entries for item in entry.details["cards"]]
    issued = db.scalars(select(Card).where(Card.job_id == job.id)).all()
    assert sorted(named) == sorted((c.card_id, c.member_id, c.version) for c in issued)
    assert all(e.target_type == "job" and e.target_id == str(job.id) and e.chapter_path == tree.branch_a.path
               for e in entries)
    done = db.scalars(select(AuditEntry).where(AuditEntry.action == "card.batch_done")).one()
    assert done.details == {"issued": 5, "failed": 0}


def test_slots_of_a_chunk_are_random_and_never_reused(db: Session) -> None:
    everything = status_lists.allocate_slots(db, 1024, 1000)
    slots = everything[:700]
    assert len(set(everything)) == 1000
    per_list = Counter(list_id for list_id, _ in everything)
    # A list closes at 75 %: 768 slots of 1,024, the rest go to a new list.
    assert sorted(per_list.values()) == [232, 768]
    lists = db.scalars(select(StatusList).where(StatusList.id.in_(per_list))).all()
    assert sorted(s.allocated for s in lists) == [232, 768]
    first = [index for list_id, index in slots[:50]]
    assert first != sorted(first)  # random order, not a counter


def test_slots_skip_the_indexes_cards_already_hold(db: Session, tree: Tree, cipher: PiiCipher,
                                                  settings: Settings) -> None:
    keyring = KeyRing(settings.kek)
    held, card_ids = [], []
    for name in NAMES[:3]:
        card = cards.issue_card(db, SYSTEM, keyring, make_member(db, cipher, tree.branch_a, full_name=name).id,
                                validity_years=5, list_size=1024)
        held.append((card.status_list_id, card.status_index))
        card_ids.append(card.card_id)
    # A revoked card's slot stays taken: a revoked card never comes back to life through another card's index.
    cards.revoke_card(db, SYSTEM, card_ids[0], reason="lost", note=None)
    taken = set(held)
    fresh = status_lists.allocate_slots(db, 1024, 765)  # the rest of the first list, exactly
    assert not taken & set(fresh)
    assert len(set(fresh)) == 765 and {list_id for list_id, _ in fresh} == {held[0][0]}


def test_a_crashed_worker_s_chunk_is_taken_over_when_its_lease_expires(
        db: Session, tree: Tree, cipher: PiiCipher, settings: Settings) -> None:
    members = _members(db, cipher, tree)
    stopping = threading.Event()
    stopping.set()  # Planned, then stopped before the first chunk.
    job = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id, stopping=stopping)
    assert (job.status, job.total, job.done, job.error) == ("failed", 5, 0, jobs.STOPPED_MESSAGE)
    chunks = db.scalars(select(JobChunk).where(JobChunk.job_id == job.id).order_by(JobChunk.id)).all()
    # A worker claimed the first chunk and died mid-chunk: nothing of it committed, its lease has run out.
    db.execute(update(JobChunk).where(JobChunk.id == chunks[0].id).values(
        status="running", worker="dead-host:1:1", lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    job = _run(db, settings, job.id, worker="second-host:2:2")  # cardsvc issue --job N
    assert (job.status, job.done, job.failed, job.error) == ("done", 5, 0, None)
    db.expire_all()
    taken = db.get_one(JobChunk, chunks[0].id)
    assert (taken.status, taken.worker, taken.issued) == ("done", "second-host:2:2", 2)
    per_member = Counter(c.member_id for c in db.scalars(select(Card)))
    assert per_member == Counter(m.id for m in members)


def test_a_chunk_whose_lease_runs_is_left_to_its_worker(db: Session, tree: Tree, cipher: PiiCipher) -> None:
    _members(db, cipher, tree)
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    card_batches._plan(db, job, date.today(), 2)
    first = card_batches._claim(db, job.id, "one", 60)
    second = card_batches._claim(db, job.id, "two", 60)
    third = card_batches._claim(db, job.id, "three", 60)
    assert first is not None and second is not None and third is not None
    assert len({first.id, second.id, third.id}) == 3
    assert card_batches._claim(db, job.id, "four", 60) is None  # all three held under a live lease


def test_running_a_job_again_issues_nothing_twice(db: Session, tree: Tree, cipher: PiiCipher,
                                                  settings: Settings) -> None:
    _members(db, cipher, tree)
    job = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id)
    before = db.scalars(select(Card.card_id)).all()
    assert _run(db, settings, job.id).done == 5  # a finished job: nothing to do
    # As if every chunk had been lost after its commit: the members already hold their cards from this job.
    db.execute(update(JobChunk).where(JobChunk.job_id == job.id).values(status="pending"))
    db.execute(update(Job).where(Job.id == job.id).values(status="running"))
    db.commit()
    job = _run(db, settings, job.id)
    assert job.status == "done" and job.done == 5
    assert sorted(db.scalars(select(Card.card_id)).all()) == sorted(before)
    again = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id)
    assert (again.status, again.total, again.done) == ("done", 0, 0)


def test_an_expired_card_is_superseded_by_the_batch(db: Session, tree: Tree, cipher: PiiCipher,
                                                    settings: Settings) -> None:
    old, new = make_member(db, cipher, tree.branch_a), make_member(db, cipher, tree.branch_a, full_name="Lê Thị Hoa")
    expired = cards.issue_card(db, SYSTEM, KeyRing(settings.kek), old.id, today=date(2015, 1, 1), **ISSUE)
    job = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id)
    assert (job.status, job.done) == ("done", 2)
    db.refresh(expired)
    assert expired.status == "superseded"
    current = cards.current_card(db, old.id)
    assert current is not None and current.version == 2 and current.job_id == job.id
    assert cards.current_card(db, new.id) is not None


def test_job_progress_and_pace_through_the_api(client: TestClient, db: Session, tree: Tree, cipher: PiiCipher) -> None:
    _members(db, cipher, tree)
    headers = login(client, "t.officer.a")
    started = client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={}, headers=headers)
    assert started.status_code == 202, started.text
    assert started.json()["rate"] is None
    job = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert (job["status"], job["total"], job["done"], job["seconds_left"]) == ("done", 5, 5, 0)
    assert job["rate"] is None or job["rate"] > 0


def test_job_pace_while_running(db: Session, tree: Tree, cipher: PiiCipher) -> None:
    _members(db, cipher, tree)
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    card_batches._plan(db, job, date.today(), 2)
    db.refresh(job)
    now = utcnow()
    first = db.scalars(select(JobChunk).where(JobChunk.job_id == job.id).order_by(JobChunk.id)).first()
    assert first is not None
    db.execute(update(JobChunk).where(JobChunk.id == first.id).values(
        status="done", issued=2, started_at=now - timedelta(seconds=4), finished_at=now - timedelta(seconds=3)))
    db.execute(update(Job).where(Job.id == job.id).values(done=2))
    db.refresh(job)
    pace = card_batches.pace(db, job, now=now)
    assert pace == card_batches.Pace(0.5, 6.0)  # 2 cards in 4 s; 3 left


def test_bad_batch_requests_are_4xx(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    assert client.post("/v1/chapters/999999/cards/batch", json={}, headers=headers).status_code == 404
    assert client.post(f"/v1/chapters/{tree.branch_b.id}/cards/batch", json={}, headers=headers).status_code == 404
    assert client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={"subtree": "x"},
                       headers=headers).status_code == 422
    assert client.post(f"/v1/chapters/{tree.branch_a.id}/cards/batch", json={"workers": 2},
                       headers=headers).status_code == 422
    assert client.get("/v1/jobs/999999", headers=headers).status_code == 404


def _seed_committed(session: Session, settings: Settings, count: int) -> int:
    actor = system_actor("batch-race")
    for purpose in ("trust", "card"):
        keys.create_key(session, actor, settings.kek, purpose=purpose)
    root = chapters.create_chapter(session, actor, code="RACE", name="Race", level="central", parent_id=None)
    rows = []
    for n in range(count):
        name = f"Nguyễn Thị {GIVEN[n % 20]} {GIVEN[n // 20 % 20]} {GIVEN[n // 400 % 20]}"
        rows.append({"member_number": format_member_number(n + 1), "full_name": name,
                     "name_search": name_search_key(name), "sort_key": given_name_sort_key(name),
                     "birth_date": date(1980, 1, 1), "birth_date_precision": "day", "gender": "female",
                     "chapter_id": root.id, "status": "active", "honorary": False})
    session.execute(insert(Member), rows)
    session.commit()
    return jobs.start_batch(session, actor, root.id, subtree=True).id


@pytest.mark.postgres_only
def test_two_workers_share_one_job_and_every_member_gets_exactly_one_card(database_url: str) -> None:
    from sqlalchemy import func
    from sqlalchemy.engine import make_url

    from cardsvc.db.session import make_session_factory
    from tests.server.servers import fresh_postgres

    if BACKEND != "postgresql" or not database_url.startswith("postgresql"):
        pytest.fail("this test needs PostgreSQL: run it with CARDSVC_TEST_BACKEND=postgresql")
    url, engine = fresh_postgres(database_url, f"{make_url(database_url).database}_batch_workers")
    try:
        settings = Settings(environment="test", database_url=url, secret_key=TEST_SECRET,
                            key_encryption_key=TEST_KEK, _env_file=None)  # type: ignore[call-arg]
        factory = make_session_factory(engine)
        with factory() as session:
            job_id = _seed_committed(session, settings, 3000)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(name: str) -> None:
            try:
                barrier.wait()
                jobs.run_batch(factory, KeyRing(settings.kek), job_id, validity_years=5, list_size=2**16,
                               worker=name, chunk_size=100, poll_seconds=0.05)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(name,)) for name in ("worker-1", "worker-2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors
        with factory() as session:
            job = session.get_one(Job, job_id)
            assert (job.status, job.total, job.done, job.failed) == ("done", 3000, 3000, 0)
            per_member = session.execute(select(Card.member_id, func.count()).group_by(Card.member_id)).all()
            assert len(per_member) == 3000 and {count for _, count in per_member} == {1}
            slots = session.execute(select(Card.status_list_id, Card.status_index)).all()
            assert len(set(slots)) == 3000
            workers = Counter(session.scalars(select(JobChunk.worker).where(JobChunk.job_id == job_id)))
            assert set(workers) == {"worker-1", "worker-2"} and sum(workers.values()) == 30
            assert session.scalar(select(func.count()).select_from(Chapter)) == 1
            named = [item[0] for entry in session.scalars(select(AuditEntry.details).where(
                AuditEntry.action == "card.batch_issue")) for item in entry["cards"]]
            assert sorted(named) == sorted(session.scalars(select(Card.card_id)))
    finally:
        engine.dispose()


def _page_login(client: TestClient, username: str) -> str:
    def csrf_of(html: str) -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match
        return match.group(1)

    form = client.get("/admin/login")
    response = client.post("/admin/login", data={"username": username, "password": PASSWORD,
                                                 "csrf_token": csrf_of(form.text)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/admin").text)


def test_the_admin_job_page_shows_the_rate_and_time_left(client: TestClient, db: Session, tree: Tree,
                                                         cipher: PiiCipher) -> None:
    _members(db, cipher, tree)
    token = _page_login(client, "t.officer.a")
    started = client.post("/admin/print", data={"csrf_token": token, "chapter": str(tree.branch_a.id)},
                          follow_redirects=False)
    job_url = started.headers["location"]
    job_id = int(job_url.rsplit("/", 1)[1])
    now = utcnow()
    # Timed by hand so that the figures are exact: the job's one chunk took 5 s for its 5 cards.
    db.execute(update(JobChunk).where(JobChunk.job_id == job_id).values(
        started_at=now - timedelta(seconds=5), finished_at=now))
    db.commit()
    assert "Tốc độ trung bình 1 thẻ/giây" in client.get(job_url).text
    # Still running, 5 of 20 done at about 1 card a second: some 15 s left.
    db.execute(update(Job).where(Job.id == job_id).values(status="running", total=20))
    db.commit()
    progress = client.get(f"{job_url}/progress.json").json()
    assert progress["rate"] == pytest.approx(1.0, abs=0.1) and 13 <= progress["seconds_left"] <= 16
    assert re.fullmatch(r"Tốc độ 1 thẻ/giây, còn khoảng 0:00:1[3-6]", progress["pace"])
    page = client.get(job_url).text
    assert 'data-job="pace">Tốc độ 1 thẻ/giây, còn khoảng 0:00:1' in page


def test_metrics_show_the_rate_and_time_left_of_running_batches(client: TestClient, app: FastAPI, db: Session,
                                                                tree: Tree) -> None:
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    now = utcnow()
    db.add(JobChunk(job_id=job.id, first_member_id=1, last_member_id=100, planned=100, status="done", issued=100,
                    failed=0, started_at=now - timedelta(seconds=10), finished_at=now - timedelta(seconds=5)))
    db.execute(update(Job).where(Job.id == job.id).values(status="running", total=300, done=100))
    db.commit()
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        text = local.get("/metrics").text
    samples = {sample.name: sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples}
    # 100 cards in 10 s so far, 200 to go.
    assert samples["cardsvc_batch_rate_cards_per_second"] == pytest.approx(10.0, abs=0.5)
    assert samples["cardsvc_batch_seconds_left"] == pytest.approx(20.0, abs=1.5)


def test_a_stopping_worker_leaves_the_job_to_the_others(db: Session, tree: Tree, cipher: PiiCipher,
                                                        settings: Settings) -> None:
    _members(db, cipher, tree)
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    card_batches._plan(db, job, date.today(), 2)
    held = card_batches._claim(db, job.id, "other-host:9:9", 60)  # another worker is in the middle of a chunk
    db.commit()
    assert held is not None
    stopping = threading.Event()
    stopping.set()
    job = _run(db, settings, job.id, stopping=stopping, worker="this-host:1:1")
    assert (job.status, job.error, job.done) == ("running", None, 0)  # not failed: the other worker goes on
    assert db.scalars(select(JobChunk.status).where(JobChunk.job_id == job.id)).all().count("running") == 1


def test_workers_stop_at_a_job_another_worker_failed(db: Session, tree: Tree, cipher: PiiCipher,
                                                     settings: Settings) -> None:
    _members(db, cipher, tree)
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    progress: list[int] = []

    def fail_after_first_chunk(done: int, _total: int) -> None:
        progress.append(done)
        # What a worker that met an error does: the job is failed for every worker.
        db.execute(update(Job).where(Job.id == job.id).values(status="failed", error="stopped elsewhere"))

    job = _run(db, settings, job.id, progress=fail_after_first_chunk)
    assert (job.status, job.done, job.error, progress) == ("failed", 2, "stopped elsewhere", [2])
    job = _run(db, settings, job.id)  # cardsvc issue --job N resumes it
    assert (job.status, job.done, job.error) == ("done", 5, None)


def test_a_worker_whose_chunk_was_taken_over_rolls_its_work_back(db: Session, tree: Tree, cipher: PiiCipher,
                                                                 settings: Settings) -> None:
    _members(db, cipher, tree)
    job = jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False)
    card_batches._plan(db, job, date.today(), 5)
    slow = card_batches._claim(db, job.id, "slow-host:1:1", 60)
    assert slow is not None
    db.commit()
    # The slow worker's lease ran out and another worker took the chunk over before it finished.
    db.execute(update(JobChunk).where(JobChunk.id == slow.id).values(worker="quick-host:2:2"))
    db.commit()
    actor = card_batches._job_actor(db, job)
    card_batches._run_chunk(db, actor, KeyRing(settings.kek), job, slow, "slow-host:1:1", today=date.today(),
                            **ISSUE)
    assert db.scalars(select(Card)).all() == []  # nothing of the slow worker's chunk stayed
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "card.batch_issue")).all() == []
    db.refresh(job)
    assert job.done == 0 and db.get_one(JobChunk, slow.id).status == "running"


def test_her_data_export_names_her_batch_card_and_no_one_else_s(client: TestClient, db: Session, tree: Tree,
                                                                 cipher: PiiCipher, settings: Settings) -> None:
    members = _members(db, cipher, tree)
    job = _run(db, settings, jobs.start_batch(db, SYSTEM, tree.branch_a.id, subtree=False).id)
    her = members[2]
    card = db.scalars(select(Card).where(Card.member_id == her.id)).one()
    export = client.get(f"/v1/members/{her.id}/export", headers=login(client, "t.officer.a.pii")).json()
    batch = [entry for entry in export["audit_entries"] if entry["action"] == "card.batch_issue"]
    assert len(batch) == 1 and batch[0]["target_id"] == str(job.id)
    assert batch[0]["details"]["cards"] == [[card.card_id, her.id, 1]]  # her chunk also issued another card
