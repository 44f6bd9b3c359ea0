"""Apple's PassKit web service under ``/wallet/apple`` (the passes' ``webServiceURL``), and the passes' logo.

Apple's devices call these paths as Apple specifies them: register and unregister a device for a pass, list the
passes updated since a tag, fetch the latest pass (``Last-Modified`` / ``If-Modified-Since``), and report log lines.
Requests about one pass bear its token (``Authorization: ApplePass <token>``).
"""

from __future__ import annotations

import json
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi import Path as PathParam

from cardsvc.api.deps import SessionDep
from cardsvc.services import wallet
from cardsvc.services.wallet import PassFile, WalletSetup

router = APIRouter(prefix=wallet.APPLE_SERVICE_PATH + "/v1", tags=["wallet"])
logo_router = APIRouter(include_in_schema=False)

Segment = Annotated[str, PathParam(max_length=200)]
Authorization = Annotated[str | None, Header(max_length=300)]
PKPASS = "application/vnd.apple.pkpass"


def wallet_setup(request: Request) -> WalletSetup:
    """The process's wallet setup (loaded when the application was built)."""
    setup: WalletSetup = request.app.state.wallet
    return setup


def pass_response(pass_file: PassFile, *, filename: str | None = None) -> Response:
    """A ``.pkpass`` answer with its ``Last-Modified``; never kept by a shared cache (it carries a name)."""
    headers = {"Last-Modified": format_datetime(pass_file.modified_at, usegmt=True), "Cache-Control": "no-store"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(pass_file.content, media_type=PKPASS, headers=headers)


@router.post("/devices/{device}/registrations/{pass_type}/{serial}", status_code=201, response_class=Response,
             responses={200: {"description": "Already registered"}, 201: {"description": "Registered"}})
def register(request: Request, device: Segment, pass_type: Segment, serial: Segment, session: SessionDep,
             authorization: Authorization = None, body: Annotated[dict[str, Any] | None, Body()] = None) -> Response:
    """Register a device for a pass's updates: 201 when new, 200 when it was registered already."""
    created = wallet.register_device(session, wallet_setup(request), device_id=device, pass_type_id=pass_type,
                                     serial=serial, authorization=authorization,
                                     push_token=(body or {}).get("pushToken"))
    return Response(status_code=201 if created else 200)


@router.delete("/devices/{device}/registrations/{pass_type}/{serial}", response_class=Response,
               responses={200: {"description": "Unregistered"}})
def unregister(request: Request, device: Segment, pass_type: Segment, serial: Segment, session: SessionDep,
               authorization: Authorization = None) -> Response:
    """Forget a device's registration (the pass was removed from it)."""
    wallet.unregister_device(session, wallet_setup(request), device_id=device, pass_type_id=pass_type,
                             serial=serial, authorization=authorization)
    return Response(status_code=200)


@router.get("/devices/{device}/registrations/{pass_type}", response_class=Response,
            responses={200: {"content": {"application/json": {}}}, 204: {"description": "Nothing updated"}})
def updated(request: Request, device: Segment, pass_type: Segment, session: SessionDep,
            passes_updated_since: Annotated[str | None, Query(alias="passesUpdatedSince", max_length=40)] = None
            ) -> Response:
    """The serial numbers of the device's passes updated since the tag (204 when none)."""
    found = wallet.updated_serials(session, wallet_setup(request), device_id=device, pass_type_id=pass_type,
                                   since=passes_updated_since)
    if found is None:
        return Response(status_code=204)
    serials, tag = found
    return Response(json.dumps({"serialNumbers": serials, "lastUpdated": tag}), media_type="application/json")


@router.get("/passes/{pass_type}/{serial}", response_class=Response,
            responses={200: {"content": {PKPASS: {}}}, 304: {"description": "Not modified"}})
def latest(request: Request, pass_type: Segment, serial: Segment, session: SessionDep,
           authorization: Authorization = None,
           if_modified_since: Annotated[str | None, Header(max_length=100)] = None) -> Response:
    """The latest version of a pass (304 when unchanged since ``If-Modified-Since``)."""
    found = wallet.latest_pass(session, wallet_setup(request), pass_type_id=pass_type, serial=serial,
                               authorization=authorization, if_modified_since=if_modified_since)
    return Response(status_code=304) if found is None else pass_response(found)


@router.post("/log", response_class=Response, responses={200: {"description": "Logged"}})
def device_log(body: Annotated[dict[str, Any], Body()]) -> Response:
    """Wallet's reports of problems it had with this service: logged (capped)."""
    wallet.record_device_log(body.get("logs"))
    return Response(status_code=200)


@logo_router.get(wallet.LOGO_PATH)
def logo(request: Request) -> Response:
    """The union's logo, which Google Wallet loads for the passes."""
    return Response(wallet_setup(request).logo_png, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})
