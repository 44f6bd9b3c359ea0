"""Cards: issue, lifecycle, credential and renderings; batch issuance jobs."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from cardsvc.api.deps import BatchSchedulerDep, KeyRingDep, OfficerDep, SessionDep, SettingsDep
from cardsvc.api.schemas import BatchIssue, CardId, CardIssue, CardNote, CardOut, CardRevoke, CredentialOut, Id, JobOut
from cardsvc.services import cards, jobs, printing

router = APIRouter(prefix="/v1", tags=["cards"])


@router.post("/members/{member_id}/cards", response_model=CardOut, status_code=status.HTTP_201_CREATED)
def issue_card(member_id: Id, body: CardIssue, actor: OfficerDep, session: SessionDep, keyring: KeyRingDep,
               settings: SettingsDep) -> CardOut:
    """Issue a card to an active member; her current card, if any, is superseded."""
    return CardOut.of(cards.issue_card(session, actor, keyring, member_id, validity_years=settings.card_validity_years,
                                       list_size=settings.status_list_size, reason=body.reason))


@router.get("/members/{member_id}/cards", response_model=list[CardOut])
def member_cards(member_id: Id, actor: OfficerDep, session: SessionDep) -> list[CardOut]:
    return [CardOut.of(c) for c in cards.member_cards(session, actor, member_id)]


@router.get("/cards/{card_id}", response_model=CardOut)
def get_card(card_id: CardId, actor: OfficerDep, session: SessionDep) -> CardOut:
    return CardOut.of(cards.get_card(session, actor, card_id))


@router.get("/cards/{card_id}/credential", response_model=CredentialOut)
def get_credential(card_id: CardId, actor: OfficerDep, session: SessionDep) -> CredentialOut:
    view = printing.credential_of(cards.get_card(session, actor, card_id))
    return CredentialOut.model_validate(view, from_attributes=True)


@router.get("/cards/{card_id}/qr.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def qr_png(card_id: CardId, actor: OfficerDep, session: SessionDep) -> Response:
    card = cards.get_card(session, actor, card_id)
    return Response(printing.card_qr_png(card), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


@router.get("/cards/{card_id}/qr.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def qr_svg(card_id: CardId, actor: OfficerDep, session: SessionDep) -> Response:
    card = cards.get_card(session, actor, card_id)
    return Response(printing.card_qr_svg(card), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=300"})


@router.get("/cards/{card_id}/card.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def card_pdf(card_id: CardId, actor: OfficerDep, session: SessionDep, settings: SettingsDep) -> Response:
    card = cards.get_card(session, actor, card_id)
    return Response(printing.card_pdf_of(card, settings), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="card-{card.card_id}.pdf"'})


@router.post("/cards/{card_id}/suspend", response_model=CardOut)
def suspend(card_id: CardId, body: CardNote, actor: OfficerDep, session: SessionDep) -> CardOut:
    return CardOut.of(cards.suspend_card(session, actor, card_id, note=body.note))


@router.post("/cards/{card_id}/reinstate", response_model=CardOut)
def reinstate(card_id: CardId, body: CardNote, actor: OfficerDep, session: SessionDep) -> CardOut:
    return CardOut.of(cards.reinstate_card(session, actor, card_id, note=body.note))


@router.post("/cards/{card_id}/revoke", response_model=CardOut)
def revoke(card_id: CardId, body: CardRevoke, actor: OfficerDep, session: SessionDep) -> CardOut:
    return CardOut.of(cards.revoke_card(session, actor, card_id, reason=body.reason, note=body.note))


@router.post("/cards/{card_id}/renew", response_model=CardOut, status_code=status.HTTP_201_CREATED)
def renew(card_id: CardId, actor: OfficerDep, session: SessionDep, keyring: KeyRingDep, settings: SettingsDep
          ) -> CardOut:
    """A new card version with a fresh validity period (the renewed card is superseded)."""
    return CardOut.of(cards.renew_card(session, actor, keyring, card_id, validity_years=settings.card_validity_years,
                                       list_size=settings.status_list_size))


@router.post("/chapters/{chapter_id}/cards/batch", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
def start_batch(chapter_id: Id, body: BatchIssue, actor: OfficerDep, session: SessionDep,
                scheduler: BatchSchedulerDep) -> JobOut:
    """Issue cards to every active member of the chapter (or its subtree) without a valid card, as a job."""
    job = jobs.start_batch(session, actor, chapter_id, subtree=body.subtree)
    scheduler.submit_batch(job.id)
    session.refresh(job)
    return JobOut.model_validate(job, from_attributes=True)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: Id, actor: OfficerDep, session: SessionDep) -> JobOut:
    """The job's progress; a finished job lists the members it could not issue a card to, with the reason."""
    return JobOut.of(jobs.job_report(session, actor, job_id))


@router.get("/jobs/{job_id}/sheets.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def job_sheets(job_id: Id, actor: OfficerDep, session: SessionDep, settings: SettingsDep) -> Response:
    """A4 sheets (10 cards a page, with cut marks) of the cards a batch job issued."""
    return Response(printing.sheets_pdf_of(jobs.job_cards(session, actor, job_id), settings),
                    media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="cards-job-{job_id}.pdf"'})
