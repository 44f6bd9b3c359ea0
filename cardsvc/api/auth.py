"""Login, token refresh, the current officer, and password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from cardsvc.api.deps import LoginRateLimitDep, OfficerDep, RequestIdDep, SessionDep, SettingsDep, TokensDep
from cardsvc.api.schemas import OfficerOut, PasswordChange, TokenResponse
from cardsvc.db.base import utcnow
from cardsvc.security import AccessToken
from cardsvc.services import officers

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
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    req_id: RequestIdDep,
) -> TokenResponse:
    """OAuth2 password login. Repeated failures lock the account for a growing time, and too many attempts from
    one address are refused for a while (429 with Retry-After either way)."""
    token = officers.login(
        session, tokens, username=form.username, password=form.password,
        max_failures=settings.login_max_failures, lockout_seconds=settings.login_lockout_seconds,
        request_id=req_id,
    )
    return _token_response(token)


@router.post("/auth/refresh", response_model=TokenResponse)
def refresh(actor: OfficerDep, tokens: TokensDep) -> TokenResponse:
    """A fresh token for a still-valid one, so a long meeting does not need a new login."""
    assert actor.id is not None
    return _token_response(tokens.issue(actor.id))


@router.get("/me", response_model=OfficerOut)
def me(actor: OfficerDep, session: SessionDep) -> OfficerOut:
    assert actor.id is not None
    return OfficerOut.of(officers.get_officer(session, actor, actor.id))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, actor: OfficerDep, session: SessionDep) -> None:
    officers.change_password(session, actor, current_password=body.current_password,
                             new_password=body.new_password)
