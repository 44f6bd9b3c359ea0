"""Signing keys (administrators): create, rotate, retire — including the compromised-key path."""

from __future__ import annotations

from fastapi import APIRouter, status

from cardsvc.api.deps import OfficerDep, SessionDep, SettingsDep
from cardsvc.api.schemas import CardOut, KeyCreate, KeyOut, KeyRetire, RetireOut
from cardsvc.services import keys

router = APIRouter(prefix="/v1", tags=["keys"])


def _out(key: object) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)


@router.get("/keys", response_model=list[KeyOut], responses={403: {}})
def list_keys(actor: OfficerDep, session: SessionDep) -> list[KeyOut]:
    return [_out(k) for k in keys.list_keys(session, actor)]


@router.post("/keys", response_model=KeyOut, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, actor: OfficerDep, session: SessionDep, settings: SettingsDep) -> KeyOut:
    return _out(keys.create_key(session, actor, settings.kek, purpose=body.purpose, algorithm=body.algorithm))


@router.post("/keys/rotate", response_model=KeyOut, status_code=status.HTTP_201_CREATED)
def rotate(body: KeyCreate, actor: OfficerDep, session: SessionDep, settings: SettingsDep) -> KeyOut:
    """A new active key; the previous one keeps verifying the cards it signed until they expire."""
    key, _previous = keys.rotate(session, actor, settings.kek, purpose=body.purpose, algorithm=body.algorithm)
    return _out(key)


@router.post("/keys/{kid}/retire", response_model=RetireOut)
def retire(kid: str, body: KeyRetire, actor: OfficerDep, session: SessionDep) -> RetireOut:
    """Retire a key. ``compromised`` makes every card it signed fail verification and lists them for reissue."""
    result = keys.retire(session, actor, kid, compromised=body.compromised)
    return RetireOut(key=_out(result.key), cards_revoked=len(result.cards_to_reissue),
                     reissue=[CardOut.of(c) for c in result.cards_to_reissue])
