"""Identity checks with the national population registry: sync runs, the officer review queue, coverage and the
publication of membership facts.

The request and response models live here rather than in ``schemas.py``: they describe this area only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, Field

from cardsvc.api.deps import CipherDep, OfficerDep, SessionDep
from cardsvc.api.schemas import Id, JobOut
from cardsvc.db.models import IdentityReview
from cardsvc.services.identity import coverage as identity_coverage
from cardsvc.services.identity import gateway as identity_gateway
from cardsvc.services.identity import jobs as identity_jobs
from cardsvc.services.identity import publication as identity_publication
from cardsvc.services.identity import reviews as identity_reviews
from cardsvc.services.identity import sync as identity_sync

router = APIRouter(prefix="/v1/identity", tags=["identity"])


def get_registry_jobs(request: Request) -> identity_jobs.RegistryJobs:
    """The application's registry (``app.state.registry``) behind its own job runner (``app.state.registry_runner``):
    no request waits on the registry."""
    state = request.app.state
    runner = state.registry_runner
    gateway = identity_gateway.RegistryGateway.from_settings(state.settings, state.registry, stop=runner.stopping)
    return identity_jobs.RegistryJobs(
        state.session_factory, gateway, state.cipher, runner,
        batch_size=state.settings.registry_claim_batch_size, lease_seconds=state.settings.registry_claim_lease_seconds,
    )


RegistryJobsDep = Annotated[identity_jobs.RegistryJobs, Depends(get_registry_jobs)]
ChapterQuery = Annotated[Id | None, Query(description="root of the subtree (default: your whole scope)")]


class SyncRunStart(BaseModel):
    chapter_id: Id | None = Field(default=None, description="root of the subtree (default: your whole scope)")
    force: bool = Field(default=False, description="also verify members verified recently")


class SyncRunOut(BaseModel):
    id: int
    status: str
    chapter_id: int | None
    force: bool
    total: int
    pending: int
    claimed: int
    done: int
    failed: int
    outcomes: dict[str, int]
    skipped_no_consent: int
    skipped_recent: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, summary: identity_sync.RunSummary) -> SyncRunOut:
        values = {k: v for k, v in vars(summary).items() if k != "run_id"}
        return cls(id=summary.run_id, **values)


class ReviewOut(BaseModel):
    id: int
    member_id: int
    member_number: str
    full_name: str
    chapter_code: str
    source: str
    kind: str
    differing_fields: list[str]
    registry_values: dict[str, Any]
    status: str
    decided_by_id: int | None
    decided_at: datetime | None
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, review: IdentityReview) -> ReviewOut:
        member = review.member
        return cls(id=review.id, member_id=member.id, member_number=member.member_number, full_name=member.full_name,
                   chapter_code=member.chapter.code, source=review.source, kind=review.kind,
                   differing_fields=review.differing_fields, registry_values=review.registry_values,
                   status=review.status, decided_by_id=review.decided_by_id, decided_at=review.decided_at,
                   note=review.note, created_at=review.created_at)


class ReviewDecision(BaseModel):
    decision: Literal["accept", "keep", "flag"]
    note: str | None = Field(default=None, max_length=500)


class CoverageOut(BaseModel):
    chapter_id: int
    code: str
    name: str
    members: int
    verified: int
    mismatch: int
    not_found: int
    deceased: int
    no_consent: int
    pending: int


class PublishRequest(BaseModel):
    chapter_id: Id | None = Field(default=None, description="root of the subtree (default: your whole scope)")


@router.post("/sync-runs", response_model=SyncRunOut, status_code=status.HTTP_202_ACCEPTED)
def start_sync_run(body: SyncRunStart, actor: OfficerDep, session: SessionDep, request: Request,
                   registry_jobs: RegistryJobsDep) -> SyncRunOut:
    """Verify the consenting members of a subtree with the registry, as a background job; poll the run."""
    run = identity_sync.start_sync(session, actor, chapter_id=body.chapter_id, force=body.force,
                              reverify_days=request.app.state.settings.registry_reverify_days)
    registry_jobs.submit_sync(run.id)
    return SyncRunOut.of(identity_sync.run_summary(session, actor, run.id))


@router.get("/sync-runs/{run_id}", response_model=SyncRunOut)
def get_sync_run(run_id: Id, actor: OfficerDep, session: SessionDep) -> SyncRunOut:
    return SyncRunOut.of(identity_sync.run_summary(session, actor, run_id))


@router.get("/reviews", response_model=list[ReviewOut])
def list_reviews(actor: OfficerDep, session: SessionDep, chapter_id: ChapterQuery = None,
                 review_status: Annotated[Literal["open", "accepted", "kept", "flagged"], Query(alias="status")]
                 = "open",
                 limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 before_id: Id | None = None) -> list[ReviewOut]:
    """Differences with the registry waiting for a decision (or decided ones, by status), newest first."""
    reviews = identity_reviews.list_reviews(session, actor, chapter_id=chapter_id, status=review_status, limit=limit,
                                    before_id=before_id)
    return [ReviewOut.of(review) for review in reviews]


@router.post("/reviews/{review_id}/decision", response_model=ReviewOut)
def decide_review(review_id: Id, body: ReviewDecision, actor: OfficerDep, session: SessionDep,
                  cipher: CipherDep) -> ReviewOut:
    """Accept the registry's value (the member record changes, audited), keep ours, or flag for follow-up."""
    return ReviewOut.of(identity_reviews.decide_review(session, actor, cipher, review_id, decision=body.decision,
                                               note=body.note))


@router.get("/coverage", response_model=list[CoverageOut])
def coverage(actor: OfficerDep, session: SessionDep, chapter_id: ChapterQuery = None) -> list[CoverageOut]:
    """Per chapter: members verified, mismatching, not found, deceased, without consent, or still to verify."""
    return [CoverageOut.model_validate(row, from_attributes=True)
            for row in identity_coverage.coverage(session, actor, chapter_id)]


@router.post("/publish", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
def publish(body: PublishRequest, actor: OfficerDep, session: SessionDep, registry_jobs: RegistryJobsDep
            ) -> JobOut:
    """Publish new or changed membership facts of consenting members and withdraw those of members who left, died or
    withdrew consent, as a background job: poll ``GET /v1/jobs/{id}``; its ``result`` counts what was published,
    withdrawn, unchanged and refused."""
    job = identity_publication.start_publication(session, actor, chapter_id=body.chapter_id)
    registry_jobs.submit_publication(job.id)
    session.refresh(job)
    return JobOut.model_validate(job, from_attributes=True)
