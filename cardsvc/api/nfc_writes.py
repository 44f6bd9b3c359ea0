"""NFC writes handed to a door station: officers request them, the station (device token) polls and reports."""

from __future__ import annotations

import base64

from fastapi import APIRouter, status

from cardsvc.api.deps import DeviceDep, OfficerDep, RequestIdDep, SessionDep
from cardsvc.api.schemas import DeviceNfcWrite, Id, NfcWriteIn, NfcWriteOut, NfcWriteResultIn
from cardsvc.services import nfc_writes

router = APIRouter(prefix="/v1", tags=["nfc writes"])


@router.post("/events/{event_id}/stations/{station_id}/nfc-writes", response_model=NfcWriteOut,
             status_code=status.HTTP_201_CREATED)
def request_write(event_id: Id, station_id: Id, body: NfcWriteIn, actor: OfficerDep,
                  session: SessionDep) -> NfcWriteOut:
    """Ask a station to write a card to the next blank tag put on its NFC reader (``lock``: make it read-only once
    the tag verifies). The station picks it up within seconds when online; follow it with the GET below."""
    request = nfc_writes.request_write(session, actor, event_id, station_id, body.card_id.lower(), lock=body.lock)
    return NfcWriteOut.model_validate(request, from_attributes=True)


@router.get("/events/{event_id}/stations/{station_id}/nfc-writes", response_model=list[NfcWriteOut])
def list_writes(event_id: Id, station_id: Id, actor: OfficerDep, session: SessionDep) -> list[NfcWriteOut]:
    """A station's write requests, newest first: pending, done (with the tag's UID) or failed (with the error)."""
    return [NfcWriteOut.model_validate(r, from_attributes=True)
            for r in nfc_writes.list_writes(session, actor, event_id, station_id)]


@router.get("/devices/nfc-writes", response_model=list[DeviceNfcWrite])
def pending_writes(station: DeviceDep, session: SessionDep) -> list[DeviceNfcWrite]:
    """For the station itself: its pending write requests, oldest first, with the credentials to write."""
    return [DeviceNfcWrite(id=p.request.id, card_id=p.request.card_id, lock=p.request.lock,
                           credential_base64=base64.b64encode(p.credential).decode("ascii"),
                           requested_at=p.request.requested_at)
            for p in nfc_writes.pending_for_station(session, station)]


@router.post("/devices/nfc-writes/{request_id}/result", response_model=NfcWriteOut)
def write_result(request_id: Id, body: NfcWriteResultIn, station: DeviceDep, session: SessionDep,
                 req_id: RequestIdDep) -> NfcWriteOut:
    """For the station itself: the outcome of a write (``uid``: the tag's UID in hex)."""
    request = nfc_writes.complete_write(session, station, request_id, ok=body.ok, error=body.error, uid=body.uid,
                                        request_ref=req_id)
    return NfcWriteOut.model_validate(request, from_attributes=True)
