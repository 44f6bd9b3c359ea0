"""Membership publication: the membership facts of members who consented to publication are published, re-published
when they change, and withdrawn when the member leaves, dies or withdraws her consent."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from sqlalchemy import or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from cardsvc.days import vietnam_day
from cardsvc.db.base import utcnow
from cardsvc.db.models import Chapter, Job, Member, MembershipPublication, Officer
from cardsvc.security import PiiCipher
from cardsvc.services import audit
from cardsvc.services.cards import current_card
from cardsvc.services.consents import has_active_consent
from cardsvc.services.context import Actor, subtree_condition, system_actor
from cardsvc.services.identity.gateway import RegistryGateway, RunAborted, ask, registry_failure_message, stops_the_run
from cardsvc.services.identity.scope import PUBLICATION_CONSENT, VERIFIABLE_STATUSES, consent_clause, scope_path
from cardsvc.services.jobs import STOPPED_MESSAGE, JobStopped
from cardsvc.services.officers import actor_for
from integrations.population import MembershipFact, MembershipStatus, Purpose, RegistryError, RejectedRequest

log = logging.getLogger("cardsvc.identity")


PUBLICATION_JOB = "registry_publication"


@dataclass
class PublicationSummary:
    published: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    failed: int = 0
    no_id_number: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, code: str) -> None:
        self.failed += 1
        self.errors[code] = self.errors.get(code, 0) + 1


def membership_fact(session: Session, member: Member, id_number: str, organisation_code: str) -> MembershipFact:
    """The facts the member agreed to publish: membership, chapter, join date, status, current card and validity."""
    card = current_card(session, member.id)
    valid = card is not None and card.status == "active"
    return MembershipFact(
        id_number=id_number, organisation_code=organisation_code, chapter_code=member.chapter.code,
        join_date=member.join_date or vietnam_day(member.created_at),
        status=MembershipStatus.ACTIVE if member.status == "active" else MembershipStatus.SUSPENDED,
        card_id=card.card_id if valid and card else None,
        card_valid_from=card.issued_on if valid and card else None,
        card_valid_until=card.expires_on if valid and card else None,
    )


def _fact_digest(fact: MembershipFact) -> str:
    # Everything but the ID number, which does not change without the member's record changing too.
    parts = (fact.organisation_code, fact.chapter_code, fact.join_date.isoformat(), fact.status.value,
             fact.card_id or "", fact.card_valid_from.isoformat() if fact.card_valid_from else "",
             fact.card_valid_until.isoformat() if fact.card_valid_until else "")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _withdraw_reason(session: Session, member: Member) -> str | None:
    if member.status in ("left", "deceased"):
        return f"member_{member.status}"
    if not has_active_consent(session, member.id, PUBLICATION_CONSENT):
        return "consent_withdrawn"
    return None


def start_publication(session: Session, actor: Actor, *, chapter_id: int | None) -> Job:
    """Record a publication job over a chapter's subtree (default: the actor's whole scope), to run in the
    background (:func:`run_publication`); its progress and summary are on the job row."""
    actor.require_write()
    chapter, path = scope_path(session, actor, chapter_id)
    job = Job(kind=PUBLICATION_JOB, status="queued", params={"chapter_id": chapter.id if chapter else None},
              officer_id=actor.id, chapter_path=path, total=0, done=0, failed=0)
    session.add(job)
    session.flush()
    audit.record(session, actor, "identity.publish_start", target_type="job", target_id=job.id, chapter_path=path,
                 details={"chapter_id": job.params["chapter_id"]})
    session.commit()
    return job


@dataclass(frozen=True)
class _Send:
    """One publication call, prepared in a transaction: what to send, and what to write once it succeeded."""

    operation: Callable[[], None]
    record: Callable[[Session], None]


def run_publication(session_factory: sessionmaker[Session] | Callable[[], Session], gateway: RegistryGateway,
                    cipher: PiiCipher, job_id: int) -> PublicationSummary:
    """Bring the registry in line with our members in the job's subtree: withdraw the facts of members who left,
    died or withdrew consent; publish new or changed facts of members who consent.

    Each member is prepared in one session (status and consent are checked again), sent with no transaction open,
    and recorded with its audit entry and the job's progress in the next. A refused (or still throttled) call is
    counted; a registry that cannot serve us (down, refusing the service), or a stopping runner, ends the job as
    failed with the reason. Running a publication again is safe: facts already published unchanged are not sent.
    """
    with session_factory() as session:
        job = session.get_one(Job, job_id)
        officer = session.get(Officer, job.officer_id) if job.officer_id is not None else None
        actor = actor_for(officer) if officer is not None else system_actor("registry-publication")
        scope = subtree_condition(Chapter.path, job.chapter_path) if job.chapter_path is not None else true()
        withdrawals = list(session.scalars(
            select(Member.id).join(MembershipPublication, MembershipPublication.member_id == Member.id)
            .join(Member.chapter)
            .where(MembershipPublication.withdrawn_at.is_(None), scope,
                   or_(Member.status.in_(("left", "deceased")), ~consent_clause(PUBLICATION_CONSENT)))
            .order_by(MembershipPublication.id)
        ))
        candidates = list(session.scalars(
            select(Member.id).join(Member.chapter)
            .where(scope, Member.status.in_(VERIFIABLE_STATUSES), consent_clause(PUBLICATION_CONSENT))
            .order_by(Member.id)
        ))
        job.status, job.error, job.result = "running", None, None
        job.total, job.done, job.failed = len(withdrawals) + len(candidates), 0, 0
        session.commit()
    summary = PublicationSummary()
    steps = ([partial(_prepare_withdrawal, member_id=member_id) for member_id in withdrawals]
             + [partial(_prepare_publication, member_id=member_id) for member_id in candidates])
    error: str | None = None
    looked_at = 0
    try:
        for prepare in steps:
            if gateway.stop.is_set():
                raise JobStopped
            with session_factory() as session:
                send = prepare(session, gateway, cipher, actor, summary)
            if send is None:
                looked_at += 1
                continue
            answer = ask(gateway, send.operation)
            if isinstance(answer, RegistryError) and stops_the_run(answer):
                raise RunAborted(registry_failure_message(answer))
            with session_factory() as session:
                if isinstance(answer, RegistryError):
                    summary.fail(answer.code if isinstance(answer, RejectedRequest) else type(answer).__name__)
                else:
                    send.record(session)
                looked_at += 1
                _save_progress(session, job_id, looked_at, summary)
                session.commit()
    except RunAborted as exc:
        error = str(exc)
    except JobStopped:
        error = STOPPED_MESSAGE
    with session_factory() as session:
        job = session.get_one(Job, job_id, populate_existing=True)
        job.status, job.error = ("failed", error) if error else ("done", None)
        _save_progress(session, job_id, looked_at, summary)
        session.commit()
    if error:
        log.warning("registry publication job %s failed: %s", job_id, error)
    return summary


def _save_progress(session: Session, job_id: int, looked_at: int, summary: PublicationSummary) -> None:
    session.execute(update(Job).where(Job.id == job_id)
                    .values(done=looked_at - summary.failed, failed=summary.failed, result=asdict(summary))
                    .execution_options(synchronize_session=False))


def _prepare_withdrawal(session: Session, gateway: RegistryGateway, cipher: PiiCipher, actor: Actor,
                        summary: PublicationSummary, *, member_id: int) -> _Send | None:
    member = session.get_one(Member, member_id)
    reason = _withdraw_reason(session, member)
    if reason is None or member.id_number_ciphertext is None:
        return None
    id_number = cipher.decrypt("id_number", member.id_number_ciphertext)
    context = gateway.context(actor, Purpose.MEMBERSHIP_PUBLICATION)
    chapter_path = member.chapter.path

    def record(session: Session) -> None:
        session.execute(update(MembershipPublication)
                        .where(MembershipPublication.member_id == member_id,
                               MembershipPublication.withdrawn_at.is_(None))
                        .values(withdrawn_at=utcnow()).execution_options(synchronize_session=False))
        audit.record(session, actor, "identity.membership_withdraw", target_type="member", target_id=member_id,
                     chapter_path=chapter_path,
                     details={"purpose": PUBLICATION_CONSENT, "reason": reason,
                              "registry_request_id": context.request_id})
        summary.withdrawn += 1

    return _Send(partial(gateway.registry.withdraw_membership, context, id_number, gateway.organisation_code),
                 record)


def _prepare_publication(session: Session, gateway: RegistryGateway, cipher: PiiCipher, actor: Actor,
                         summary: PublicationSummary, *, member_id: int) -> _Send | None:
    member = session.get_one(Member, member_id)
    if member.status not in VERIFIABLE_STATUSES or not has_active_consent(session, member_id, PUBLICATION_CONSENT):
        return None  # Changed since the job started; the next publication withdraws what is published.
    if member.id_number_ciphertext is None:
        summary.no_id_number += 1
        return None
    fact = membership_fact(session, member, cipher.decrypt("id_number", member.id_number_ciphertext),
                           gateway.organisation_code)
    digest = _fact_digest(fact)
    existing = session.scalar(select(MembershipPublication).where(MembershipPublication.member_id == member_id))
    if existing is not None and existing.withdrawn_at is None and existing.fact_digest == digest:
        summary.unchanged += 1
        return None
    context = gateway.context(actor, Purpose.MEMBERSHIP_PUBLICATION)
    chapter_path = member.chapter.path

    def record(session: Session) -> None:
        publication = session.scalar(select(MembershipPublication)
                                     .where(MembershipPublication.member_id == member_id))
        if publication is None:
            publication = MembershipPublication(member_id=member_id)
            session.add(publication)
        publication.published_at, publication.withdrawn_at = utcnow(), None
        publication.card_id, publication.fact_digest = fact.card_id, digest
        audit.record(session, actor, "identity.membership_publish", target_type="member", target_id=member_id,
                     chapter_path=chapter_path,
                     details={"purpose": PUBLICATION_CONSENT, "card_id": fact.card_id, "status": fact.status.value,
                              "registry_request_id": context.request_id})
        summary.published += 1

    return _Send(partial(gateway.registry.publish_membership, context, fact), record)
