"""The JSON form of registry calls, shared by the fake server and the HTTP adapter.

Field names are the published ones (DOMAIN.md §7) where they exist; the rest follow the same style and are
documented in :mod:`integrations.population.fake_server`. Decoding raises :class:`WireError` with a stable code;
the server answers it with HTTP 400, the adapter turns it into ``BadResponse``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import date
from typing import Any

from integrations.population.models import (
    REQUEST_ID_MAX_LENGTH,
    BatchState,
    BirthDate,
    CallContext,
    FieldMatch,
    Gender,
    MembershipFact,
    MembershipStatus,
    Notification,
    NotificationKind,
    Outcome,
    PersonName,
    PersonRecord,
    Purpose,
    VerifyRequest,
    VerifyResult,
)

__all__ = [
    "OFFICER_HASH_HEADER",
    "WireError",
    "decode_batch_state",
    "decode_context",
    "decode_fact",
    "decode_id_number",
    "decode_notification",
    "decode_person",
    "decode_verify_request",
    "decode_verify_result",
    "encode_context",
    "encode_fact",
    "encode_id_number",
    "encode_notification",
    "encode_person",
    "encode_verify_request",
    "encode_verify_result",
    "officer_hash",
]

OFFICER_HASH_HEADER = "X-Officer-Hash"

# GioiTinh codes: 1 = nam (male), 2 = nữ (female).
_GENDER_CODES: dict[Gender, str] = {"male": "1", "female": "2"}
_GENDERS: dict[str, Gender] = {code: gender for gender, code in _GENDER_CODES.items()}

Json = dict[str, Any]


class WireError(ValueError):
    """A body that does not follow the wire format; ``code`` is stable (``invalid_context``, ``invalid_field`` …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def officer_hash(secret_key: str, officer_code: str, request_id: str) -> str:
    """The per-officer hash header: lowercase hex of HMAC-SHA256(key = SecretKey, msg = MaCanBo + "|" + MaYeuCau).

    Both strings are UTF-8. It ties each request id to the named officer, so a token alone cannot make a call
    on another officer's behalf.
    """
    message = f"{officer_code}|{request_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _text(body: Mapping[str, Any], key: str, *, optional: bool = False, code: str = "invalid_field") -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WireError(code, f"{key} must be a non-empty string")
    return value


def _required(body: Mapping[str, Any], key: str, code: str = "invalid_field") -> str:
    value = _text(body, key, code=code)
    assert value is not None
    return value


def _date(body: Mapping[str, Any], key: str, *, optional: bool = False) -> date | None:
    text = _text(body, key, optional=optional)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WireError("invalid_field", f"{key} must be a date yyyy-mm-dd") from None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def encode_context(context: CallContext) -> Json:
    """The fields every call carries."""
    return {
        "MaYeuCau": context.request_id,
        "MaDVC": context.procedure_code,
        "MaTichHop": context.service_code,
        "MaDonVi": context.agency_code,
        "MaCanBo": context.officer_code,
        "MucDich": context.purpose.value,
    }


def decode_context(body: Mapping[str, Any]) -> CallContext:
    """Read the call context. Raises WireError ``invalid_request_id``, ``invalid_context`` or ``invalid_purpose``."""
    request_id = _required(body, "MaYeuCau", "invalid_request_id")
    if len(request_id) > REQUEST_ID_MAX_LENGTH:
        raise WireError("invalid_request_id", f"MaYeuCau must be at most {REQUEST_ID_MAX_LENGTH} characters")
    purpose_text = _required(body, "MucDich", "invalid_purpose")
    try:
        purpose = Purpose(purpose_text)
    except ValueError:
        raise WireError("invalid_purpose", "MucDich is not a known purpose") from None
    return CallContext(
        request_id=request_id,
        procedure_code=_required(body, "MaDVC", "invalid_context"),
        service_code=_required(body, "MaTichHop", "invalid_context"),
        agency_code=_required(body, "MaDonVi", "invalid_context"),
        officer_code=_required(body, "MaCanBo", "invalid_context"),
        purpose=purpose,
    )


def encode_id_number(id_number: str) -> Json:
    """``SoCMND`` for a 9-digit old number, ``SoDinhDanh`` otherwise."""
    return {"SoCMND": id_number} if len(id_number) == 9 else {"SoDinhDanh": id_number}


def decode_id_number(body: Mapping[str, Any]) -> str:
    """Exactly one of ``SoDinhDanh`` (12 digits) or ``SoCMND`` (9 digits). Raises WireError ``invalid_id_number``."""
    new, old = body.get("SoDinhDanh"), body.get("SoCMND")
    if (new is None) == (old is None):
        raise WireError("invalid_id_number", "send exactly one of SoDinhDanh or SoCMND")
    value, length = (new, 12) if new is not None else (old, 9)
    if not isinstance(value, str) or not (value.isascii() and value.isdigit() and len(value) == length):
        raise WireError("invalid_id_number", "SoDinhDanh must be 12 digits and SoCMND 9 digits")
    return value


def _encode_gender(gender: Gender | None) -> str | None:
    return _GENDER_CODES[gender] if gender else None


def _decode_gender(body: Mapping[str, Any]) -> Gender | None:
    code = body.get("GioiTinh")
    if code is None:
        return None
    if code not in _GENDERS:
        raise WireError("invalid_field", "GioiTinh must be 1 (nam) or 2 (nữ)")
    return _GENDERS[code]


def _decode_birth_date(body: Mapping[str, Any], key: str = "NgayThangNamSinh") -> BirthDate:
    try:
        return BirthDate.parse(_required(body, key))
    except ValueError:
        raise WireError("invalid_field", f"{key} must be yyyy-mm-dd or yyyy") from None


def encode_verify_request(request: VerifyRequest) -> Json:
    """``SoDinhDanh``/``SoCMND``, ``HoVaTen``, ``NgayThangNamSinh``, ``GioiTinh``."""
    body: Json = {
        **encode_id_number(request.id_number),
        "HoVaTen": request.full_name,
        "NgayThangNamSinh": request.birth_date.isoformat(),
    }
    if request.gender:
        body["GioiTinh"] = _encode_gender(request.gender)
    return body


def decode_verify_request(body: Mapping[str, Any]) -> VerifyRequest:
    """Inverse of :func:`encode_verify_request`."""
    return VerifyRequest(
        decode_id_number(body), _required(body, "HoVaTen"), _decode_birth_date(body), _decode_gender(body)
    )


def encode_verify_result(result: VerifyResult) -> Json:
    """``KetQua`` (outcome) and the per-field results ``KhopHoVaTen``, ``KhopNgayThangNamSinh``, ``KhopGioiTinh``."""
    return {
        "KetQua": result.outcome.value,
        "KhopHoVaTen": result.name.value,
        "KhopNgayThangNamSinh": result.birth_date.value,
        "KhopGioiTinh": result.gender.value,
        "HoVaTenChiKhacDau": result.name_diacritics_only,
        "ChiSoSanhNamSinh": result.birth_year_only,
    }


def decode_verify_result(body: Mapping[str, Any]) -> VerifyResult:
    """Inverse of :func:`encode_verify_result`."""
    try:
        return VerifyResult(
            Outcome(body["KetQua"]),
            FieldMatch(body["KhopHoVaTen"]),
            FieldMatch(body["KhopNgayThangNamSinh"]),
            FieldMatch(body["KhopGioiTinh"]),
            bool(body.get("HoVaTenChiKhacDau", False)),
            bool(body.get("ChiSoSanhNamSinh", False)),
        )
    except (KeyError, ValueError, TypeError):
        raise WireError("invalid_result", "the verification result is malformed") from None


def encode_person(record: PersonRecord) -> Json:
    """``SoDinhDanh``, ``SoCMND``, ``Ho``, ``ChuDem``, ``Ten``, ``NgayThangNamSinh``, ``GioiTinh``, ``NgayMat``."""
    return {
        "SoDinhDanh": record.id_number,
        "SoCMND": record.old_id_number,
        "Ho": record.name.family,
        "ChuDem": record.name.middle,
        "Ten": record.name.given,
        "NgayThangNamSinh": record.birth_date.isoformat(),
        "GioiTinh": _encode_gender(record.gender),
        "NgayMat": _iso(record.death_date),
    }


def decode_person(body: Mapping[str, Any]) -> PersonRecord:
    """Inverse of :func:`encode_person`."""
    old = body.get("SoCMND")
    if old is not None and not isinstance(old, str):
        raise WireError("invalid_field", "SoCMND must be a string")
    name = PersonName(str(body.get("Ho") or ""), str(body.get("ChuDem") or ""), str(body.get("Ten") or ""))
    return PersonRecord(
        _required(body, "SoDinhDanh"),
        name,
        _decode_birth_date(body),
        _decode_gender(body),
        old,
        _date(body, "NgayMat", optional=True),
    )


def encode_fact(fact: MembershipFact) -> Json:
    """The membership fact, and nothing else (DOMAIN.md §8)."""
    return {
        "SoDinhDanh": fact.id_number,
        "MaToChuc": fact.organisation_code,
        "MaChiHoi": fact.chapter_code,
        "NgayVaoHoi": fact.join_date.isoformat(),
        "TrangThaiHoiVien": fact.status.value,
        "MaThe": fact.card_id,
        "TheHieuLucTu": _iso(fact.card_valid_from),
        "TheHieuLucDen": _iso(fact.card_valid_until),
    }


def decode_fact(body: Mapping[str, Any]) -> MembershipFact:
    """Inverse of :func:`encode_fact`."""
    try:
        status = MembershipStatus(str(body.get("TrangThaiHoiVien")))
    except ValueError:
        raise WireError("invalid_field", "TrangThaiHoiVien must be active, suspended or ended") from None
    join_date = _date(body, "NgayVaoHoi")
    assert join_date is not None
    return MembershipFact(
        decode_id_number({"SoDinhDanh": body.get("SoDinhDanh")}),
        _required(body, "MaToChuc"),
        _required(body, "MaChiHoi"),
        join_date,
        status,
        _text(body, "MaThe", optional=True),
        _date(body, "TheHieuLucTu", optional=True),
        _date(body, "TheHieuLucDen", optional=True),
    )


def encode_notification(notification: Notification) -> Json:
    """``MaThongBao``, ``LoaiThongBao``, ``SoDinhDanh``, ``NgayXayRa``, ``HoMoi``/``ChuDemMoi``/``TenMoi``,
    ``SoDinhDanhMoi``."""
    new_name = notification.new_name
    return {
        "MaThongBao": notification.notification_id,
        "LoaiThongBao": notification.kind.value,
        "SoDinhDanh": notification.id_number,
        "NgayXayRa": notification.occurred_on.isoformat(),
        "HoMoi": new_name.family if new_name else None,
        "ChuDemMoi": new_name.middle if new_name else None,
        "TenMoi": new_name.given if new_name else None,
        "SoDinhDanhMoi": notification.new_id_number,
    }


def decode_notification(body: Mapping[str, Any]) -> Notification:
    """Inverse of :func:`encode_notification`."""
    try:
        kind = NotificationKind(str(body.get("LoaiThongBao")))
    except ValueError:
        raise WireError("invalid_field", "LoaiThongBao is not a known kind") from None
    new_name = None
    if body.get("TenMoi") is not None:
        new_name = PersonName(str(body.get("HoMoi") or ""), str(body.get("ChuDemMoi") or ""), str(body["TenMoi"]))
    occurred_on = _date(body, "NgayXayRa")
    assert occurred_on is not None
    return Notification(
        _required(body, "MaThongBao"),
        kind,
        _required(body, "SoDinhDanh"),
        occurred_on,
        new_name,
        _text(body, "SoDinhDanhMoi", optional=True),
    )


def decode_batch_state(body: Mapping[str, Any]) -> BatchState:
    """``TrangThai``: ``pending`` or ``done``."""
    try:
        return BatchState(str(body.get("TrangThai")))
    except ValueError:
        raise WireError("invalid_field", "TrangThai must be pending or done") from None
