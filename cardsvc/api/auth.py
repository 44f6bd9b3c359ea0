"""Login, token refresh, the current officer, password change and signing out everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from cardsvc.api.deps import (
    BearerDep,
    LoginRateLimitDep,
    OfficerDep,
    RequestIdDep,
    SessionDep,
    SettingsDep,
    TokensDep,
    client_address,
)
from cardsvc.api.schemas import OfficerOut, PasswordChange, TokenResponse
from cardsvc.db.base import utcnow
from cardsvc.security import AccessToken
from cardsvc.services import logins, officers

router = APIRouter(prefix="/v1", tags=["auth"])


def _token_response(token: AccessToken) -> TokenResponse:
    return TokenResponse(
        access_token=token.token,
        expires_in=max(0, int((token.expires_at - utcnow()).total_seconds())),
        expires_at=token.expires_at,
    )


@router.post("/auth/token", response_model=TokenResponse, dependencies=[LoginRateLimitDep], responses={401: {}})
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    req_id: RequestIdDep,
) -> TokenResponse:
    """OAuth2 password login. Repeated wrong passwords pause logins of that account from that address for a growing
    time, answered like any wrong password (401); too many attempts from one address, whatever the usernames, are
    refused for a while (429 with Retry-After)."""
    token = logins.login(
        session, tokens, username=form.username, password=form.password, address=client_address(request),
        max_failures=settings.login_max_failures, lockout_seconds=settings.login_lockout_seconds,
        request_id=req_id,
    )
    return _token_response(token)


@router.post("/auth/refresh", response_model=TokenResponse)
def refresh(session: SessionDep, tokens: TokensDep, token: BearerDep) -> TokenResponse:
    """A fresh token for a still-valid one, so a long meeting does not need a new login; never beyond
    CARDSVC_SESSION_MAX_HOURS after the password login."""
    return _token_response(logins.refresh(session, tokens, token))


@router.get("/me", response_model=OfficerOut)
def me(actor: OfficerDep, session: SessionDep) -> OfficerOut:
    assert actor.id is not None
    return OfficerOut.of(officers.get_officer(session, actor, actor.id))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, actor: OfficerDep, session: SessionDep) -> None:
    """Change the password; every session of the officer ends (this token too): sign in again."""
    officers.change_password(session, actor, current_password=body.current_password,
                             new_password=body.new_password)


@router.post("/me/sign-out-everywhere", status_code=status.HTTP_204_NO_CONTENT)
def sign_out_everywhere(actor: OfficerDep, session: SessionDep) -> None:
    """End every session of the officer: all her tokens (this one too) and her officer-page sessions."""
    assert actor.id is not None
    officers.sign_out_everywhere(session, actor, actor.id)
