"""Events, stations (devices) and check-ins."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request, status

from cardsvc.api.deps import (
    OfficerDep,
    PublicBaseUrlDep,
    SessionDep,
    limit_checkin_rate,
    oauth2_scheme,
    officer_actor,
    request_id,
)
from cardsvc.api.schemas import (
    ChapterRef,
    CheckinIn,
    CheckinMember,
    CheckinOut,
    EventCreate,
    EventOut,
    FirstEntryOut,
    Id,
    InviteIn,
    InviteOut,
    ProvisionIn,
    ProvisionOut,
    StationCreate,
    StationOut,
    StationRegistered,
)
from cardsvc.services import checkins, events, stations
from cardsvc.services.stations import DEVICE_TOKEN_PREFIX

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventOut, status_code=status.HTTP_201_CREATED)
def create_event(body: EventCreate, actor: OfficerDep, session: SessionDep) -> EventOut:
    spec = events.EventSpec(**body.model_dump())
    return EventOut.of(events.create_event(session, actor, spec))


@router.get("/events", response_model=list[EventOut])
def list_events(actor: OfficerDep, session: SessionDep, chapter_id: Id | None = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[EventOut]:
    return [EventOut.of(e) for e in events.list_events(session, actor, chapter_id=chapter_id, limit=limit,
                                                        offset=offset)]


@router.get("/events/{event_id}", response_model=EventOut)
def get_event(event_id: Id, actor: OfficerDep, session: SessionDep) -> EventOut:
    return EventOut.of(events.get_event(session, actor, event_id))


@router.post("/events/{event_id}/close", response_model=EventOut)
def close_event(event_id: Id, actor: OfficerDep, session: SessionDep) -> EventOut:
    return EventOut.of(events.close_event(session, actor, event_id))


@router.post("/events/{event_id}/invites", response_model=InviteOut)
def invite(event_id: Id, body: InviteIn, actor: OfficerDep, session: SessionDep) -> InviteOut:
    return InviteOut(invited=events.invite(session, actor, event_id, body.member_ids))


@router.post("/events/{event_id}/stations", response_model=StationRegistered, status_code=status.HTTP_201_CREATED)
def register_station(event_id: Id, body: StationCreate, actor: OfficerDep, session: SessionDep,
                     base_url: PublicBaseUrlDep) -> StationRegistered:
    """Register a door station or phone; show ``provisioning_url`` as a QR for the device to scan once."""
    registration = stations.register_station(session, actor, event_id, body.name)
    return StationRegistered(
        station=StationOut.model_validate(registration.station, from_attributes=True),
        provisioning_code=registration.provisioning_code,
        provisioning_url=stations.provisioning_url(base_url, registration.provisioning_code),
    )


@router.get("/events/{event_id}/stations", response_model=list[StationOut])
def list_stations(event_id: Id, actor: OfficerDep, session: SessionDep) -> list[StationOut]:
    return [StationOut.model_validate(s, from_attributes=True)
            for s in stations.list_stations(session, actor, event_id)]


@router.post("/events/{event_id}/stations/{station_id}/revoke", response_model=StationOut)
def revoke_station(event_id: Id, station_id: Id, actor: OfficerDep, session: SessionDep) -> StationOut:
    return StationOut.model_validate(stations.revoke_station(session, actor, event_id, station_id),
                                     from_attributes=True)


@router.post("/devices/provision", response_model=ProvisionOut, responses={401: {}})
def provision(body: ProvisionIn, session: SessionDep, base_url: PublicBaseUrlDep) -> ProvisionOut:
    """A device exchanges its one-time set-up code for a device token (public: the code is the credential)."""
    provisioned = stations.provision(session, body.code)
    return ProvisionOut(device_token=provisioned.device_token, station_id=provisioned.station.id,
                        event_id=provisioned.station.event_id, server=base_url,
                        station_name=provisioned.station.name)


@router.post("/events/{event_id}/checkins", response_model=CheckinOut, responses={429: {}})
async def checkin(event_id: Id, body: CheckinIn, request: Request,
                  token: Annotated[str | None, Depends(oauth2_scheme)]) -> CheckinOut:
    """Check a scanned card (or, for officers, a member found by search) in. Retrying with the same
    ``client_nonce`` returns the same answer and records nothing new."""
    # A door rush is this route's whole load: the caller, the rate limit and the check-in run in one worker thread
    # (a dependency per step would hop to the thread pool once each), a few check-ins at a time.
    return await to_thread.run_sync(_checkin, request, event_id, body, token,
                                    limiter=request.app.state.checkin_limiter)


def _checkin(request: Request, event_id: int, body: CheckinIn, token: str | None) -> CheckinOut:
    state = request.app.state
    scan = checkins.CheckinRequest(**body.model_dump())
    with state.session_factory() as session:
        if token and token.startswith(DEVICE_TOKEN_PREFIX):
            context = checkins.station_context(session, token, scan)
            limit_checkin_rate(request, station_id=context.station_id)
            result = checkins.station_checkin(session, context, event_id, scan, state.trust_cache)
        else:
            actor = officer_actor(session, state.tokens, request_id(request), token)
            limit_checkin_rate(request, officer_id=actor.id)
            result = checkins.checkin(session, actor, event_id, scan)
        row, member = result.checkin, result.member
        if not result.replayed:
            state.metrics.observe_checkin(result=row.result, reason=row.reason, source=row.source)
        return CheckinOut(
            result="ok" if row.result == "ok" else "error",
            reason=row.reason,
            checkin_id=row.id,
            direction=row.direction,
            member=CheckinMember(
                id=member.id, full_name=member.full_name, member_number=member.member_number,
                chapter=ChapterRef(id=member.chapter_id, code=member.chapter_code, name=member.chapter_name),
            ) if member is not None else None,
            first_checkin=FirstEntryOut(at=result.first.at, station_id=result.first.station_id,
                                        station_name=result.first.station_name) if result.first else None,
            replayed=result.replayed,
            received_at=row.received_at,
            conflict=result.conflict,
            live=result.live,
            id_check=result.id_check,
        )
