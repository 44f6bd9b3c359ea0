"""The door station's decision: scanned QR text or NFC bytes in, one :class:`Verdict` out.

:func:`verify` runs entirely offline from a trust bundle that was verified against the pinned trust anchor
(:func:`verification.trust.verify_trust_bundle`) and from status lists verified with the same anchor
(:func:`verification.status.verify_status_list`). It needs no database, no network and no private key, and it never
raises on bad input: every refusal is one stable reason code from :data:`verification.errors.REASONS`, checked in the
order of docs/card-format.md §6.1:

1. text clean-up, prefix and digits (``malformed`` / ``unsupported_version``);
2. deterministic CBOR structure and the limits of every claim (``malformed`` / ``unsupported_version``);
3. key id lookup (``unknown_key``), compromised key (``key_retired``), the algorithm bound to the key id and the
   signature over the received bytes, low-S for ES256 (``bad_signature``);
4. validity dates with 600 seconds of clock skew at both edges (``not_yet_valid`` / ``expired``);
5. the status list (``revoked`` / ``suspended`` / ``superseded``; an index outside the list is ``malformed``).

A live code (QR text ``8402…``, docs/card-format.md §8) branches off at step 1 and adds, after step 3, the holder's
proof (``holder_proof_invalid``) and its time step (``stale_live_code``); steps 4 and 5 are the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from verification.crypto import verify_signature
from verification.errors import CredentialError, Reason, TrustError
from verification.format import (
    CLOCK_SKEW_SECONDS,
    CardClaims,
    ParsedCredential,
    credential_from_text,
    day_start,
    parse_credential,
)
from verification.live import is_fresh, is_live_text, live_code_from_text, parse_live_code, verify_holder_proof
from verification.status import (
    STATUS_REVOKED,
    STATUS_SUPERSEDED,
    STATUS_SUSPENDED,
    STATUS_VALID,
    StatusListView,
    verify_status_list,
)
from verification.trust import TrustBundle, TrustedKey

MissingStatusPolicy = Literal["accept", "reject"]
_DAY_SECONDS: Final = 86400
_STATUS_REASONS: Final[dict[int, Reason]] = {
    STATUS_REVOKED: "revoked",
    STATUS_SUSPENDED: "suspended",
    STATUS_SUPERSEDED: "superseded",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one scan.

    Attributes:
        ok: True only for a card that may enter.
        reason: None when ``ok``; otherwise exactly one stable reason code.
        claims: The card's claims when its signature verified (also on ``expired``, ``revoked``… so the steward
            can see who it is); always None when the signature was not verified or did not verify.
        kid: The key id the credential names, once its structure parsed (useful in logs even for ``unknown_key``).
        payload_hash: SHA-256 hex of the exact scanned input (text as UTF-8), for denied-scan logs; the payload
            itself is personal data and is never logged.
        status_checked: True when a status list was consulted for this card. False on a verdict reached without
            one, in particular when the card's status list was missing (see :func:`verify`).
        live: True when the scan was a live code (QR text ``8402…``, docs/card-format.md §8), whatever the verdict;
            False for a printed or static card.
    """

    ok: bool
    reason: Reason | None
    claims: CardClaims | None
    kid: bytes | None
    payload_hash: str
    status_checked: bool = False
    live: bool = False

    @classmethod
    def valid(cls, claims: CardClaims, kid: bytes, payload_hash: str, *, status_checked: bool = True,
              live: bool = False) -> Verdict:
        """An accepting verdict.

        Args:
            claims: The verified claims.
            kid: The key id that signed them.
            payload_hash: See :attr:`payload_hash`.
            status_checked: Whether a status list was consulted.
            live: See :attr:`live`.

        Returns:
            A verdict with ``ok`` True and no reason.
        """
        verdict = object.__new__(cls)
        # What cls(...) builds, filled in directly: a frozen dataclass's __init__ pays for a call per field.
        verdict.__dict__.update(ok=True, reason=None, claims=claims, kid=kid, payload_hash=payload_hash,
                                status_checked=status_checked, live=live)
        return verdict

    @classmethod
    def denied(cls, reason: Reason, payload_hash: str, *, claims: CardClaims | None = None, kid: bytes | None = None,
               status_checked: bool = False, live: bool = False) -> Verdict:
        """A refusing verdict.

        Args:
            reason: The stable reason code.
            payload_hash: See :attr:`payload_hash`.
            claims: Only when the signature verified.
            kid: The key id named by the credential, if it parsed.
            status_checked: Whether a status list was consulted.
            live: See :attr:`live`.

        Returns:
            A verdict with ``ok`` False.
        """
        return cls(False, reason, claims, kid, payload_hash, status_checked, live)


class StatusSource(Protocol):
    """Where :func:`verify` reads a card's status (2-bit values of docs/card-format.md §4)."""

    def status(self, list_id: int, index: int) -> int | None:
        """The status value of entry ``index`` in list ``list_id``.

        Args:
            list_id: The status list id carried by the card.
            index: The card's index in that list.

        Returns:
            0 valid, 1 revoked, 2 suspended, 3 superseded; None when the list is unknown or unavailable.

        Raises:
            IndexError: ``index`` lies outside a list that is available.
        """
        ...


class StatusLists:
    """A :class:`StatusSource` over status lists that were already verified with the trust anchor."""

    def __init__(self, lists: Mapping[int, StatusListView]) -> None:
        """Index verified lists.

        Args:
            lists: Verified lists by status list id. A list id absent from the mapping is unavailable: ``status``
                returns None for it and :func:`verify` applies its ``on_missing_status`` policy.
        """
        self._lists = dict(lists)

    @classmethod
    def from_tokens(cls, trust: TrustBundle, tokens: Mapping[int, str], *, now: datetime) -> StatusLists:
        """Verify downloaded status-list JWTs with the bundle's trust anchor and index them by list id.

        Args:
            trust: A verified trust bundle; it names each list's URI, which the token's ``sub`` must match.
            tokens: The status-list JWTs by list id.
            now: The station's clock, to refuse expired lists.

        Returns:
            The verified lists.

        Raises:
            TrustError: A token does not verify, has expired, or belongs to a list the bundle does not name.
        """
        lists: dict[int, StatusListView] = {}
        anchor = trust.anchor
        for list_id, token in tokens.items():
            uri = trust.status_lists.get(list_id)
            if uri is None:
                raise TrustError(f"status list {list_id} is not named by the trust bundle")
            lists[list_id] = verify_status_list(token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid,
                                                uri=uri, now=now)
        return cls(lists)

    def status(self, list_id: int, index: int) -> int | None:
        """See :meth:`StatusSource.status`."""
        view = self._lists.get(list_id)
        return None if view is None else view.status(index)


def payload_hash_of(scanned: object) -> str:
    """SHA-256 hex of the exact scanned input: bytes as they are, text as UTF-8.

    Args:
        scanned: What the reader delivered.

    Returns:
        64 hex digits. Lone surrogates in text are hashed as their UTF-8-style code units rather than failing, and
        an input that is neither text nor bytes hashes as the empty input.
    """
    if isinstance(scanned, str):
        # "surrogatepass": a reader that decoded garbage with surrogateescape must still get a hash, not an error.
        return hashlib.sha256(scanned.encode("utf-8", "surrogatepass")).hexdigest()
    if isinstance(scanned, bytes | bytearray | memoryview):
        return hashlib.sha256(scanned).hexdigest()
    return hashlib.sha256(b"").hexdigest()


def verify(scanned: str | bytes, trust: TrustBundle, status: StatusSource, now: datetime, *,
           on_missing_status: MissingStatusPolicy = "reject") -> Verdict:
    """Decide whether a scanned card is valid, offline.

    Args:
        scanned: QR text as a scanner typed it (whitespace, CR/LF, an AIM identifier and one ECI escape around the
            digits are tolerated, docs/card-format.md §2) or the raw COSE_Sign1 bytes read from an NFC tag.
        trust: A trust bundle already verified with the pinned anchor.
        status: The station's verified status lists.
        now: The station's clock; must be timezone-aware. It may be off by up to
            :data:`verification.format.CLOCK_SKEW_SECONDS` at both validity edges.
        on_missing_status: What to do with an otherwise valid card whose status list the station does not have.
            ``"reject"`` (the default, fail closed): the station cannot show that the card is not revoked, so the
            verdict is ``revoked`` with ``status_checked=False`` and the claims filled, which lets a station tell
            "revoked by the issuer" (``status_checked=True``) from "no status list — sync this station" without
            widening the fixed reason set. ``"accept"``: the card passes with ``status_checked=False`` so the
            station can show a warning; for deployments that prefer availability over revocation.

    Returns:
        A valid verdict with the claims, or a denied verdict with exactly one reason code. Never raises on any
        ``scanned`` value; a status index outside its (available) list is ``malformed``, and a status value other
        than 0-3 is treated as ``revoked``.

    Raises:
        ValueError: ``now`` is naive (a programming error, not bad input: a naive clock would silently shift every
            validity edge by the station's UTC offset).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    digest = payload_hash_of(scanned)
    if isinstance(scanned, str) and is_live_text(scanned):
        return _verify_live(scanned, digest, trust, status, now, on_missing_status)
    try:
        raw = credential_from_text(scanned) if isinstance(scanned, str) else scanned
        parsed = parse_credential(raw)
    except CredentialError as exc:
        return Verdict.denied(exc.reason, digest)
    kid = parsed.kid
    trusted = trust.keys.get(kid)
    refused = _key_refusal(parsed, trusted)
    if refused is not None:
        return Verdict.denied(refused, digest, kid=kid)
    return _dates_and_status(parsed.claims, kid, digest, status, now.timestamp(), on_missing_status, live=False)


def _key_refusal(parsed: ParsedCredential, trusted: TrustedKey | None) -> Reason | None:
    """Step 3 of docs/card-format.md §6.1: the key id, a compromised key, the bound algorithm and the signature."""
    if trusted is None:
        return "unknown_key"
    # A compromised key's signatures prove nothing, so the claims are not shown even if the signature verifies.
    if trusted.status == "compromised":
        return "key_retired"
    try:
        verify_signature(parsed, trusted.algorithm, trusted.key)
    except CredentialError as exc:
        return exc.reason
    return None


def _verify_live(scanned: str, digest: str, trust: TrustBundle, status: StatusSource, now: datetime,
                 on_missing_status: MissingStatusPolicy) -> Verdict:
    """:func:`verify` of a live code (docs/card-format.md §8.4): the card's steps with the holder's proof and the
    time step between the signature and the dates."""
    try:
        live = parse_live_code(live_code_from_text(scanned))
    except CredentialError as exc:
        return Verdict.denied(exc.reason, digest, live=True)
    parsed = live.credential
    kid = parsed.kid
    refused = _key_refusal(parsed, trust.keys.get(kid))
    if refused is not None:
        return Verdict.denied(refused, digest, kid=kid, live=True)
    claims = parsed.claims
    try:
        verify_holder_proof(live)
    except CredentialError as exc:
        return Verdict.denied(exc.reason, digest, claims=claims, kid=kid, live=True)
    instant = now.timestamp()
    if not is_fresh(live.time_step, instant):
        return Verdict.denied("stale_live_code", digest, claims=claims, kid=kid, live=True)
    return _dates_and_status(claims, kid, digest, status, instant, on_missing_status, live=True)


def _dates_and_status(claims: CardClaims, kid: bytes, digest: str, status: StatusSource, instant: float,
                      on_missing_status: MissingStatusPolicy, *, live: bool) -> Verdict:
    """Steps 4 and 5 of docs/card-format.md §6.1 for claims whose signature verified, at ``instant`` (the station's
    clock, seconds since the epoch)."""
    # Valid from iat - skew to exp + skew, exp excluded: iat is 00:00 of issued_on, exp 00:00 of the day after
    # expires_on (adding seconds costs less than date arithmetic).
    if instant < day_start(claims.issued_on) - CLOCK_SKEW_SECONDS:
        return Verdict.denied("not_yet_valid", digest, claims=claims, kid=kid, live=live)
    if instant >= day_start(claims.expires_on) + (_DAY_SECONDS + CLOCK_SKEW_SECONDS):
        return Verdict.denied("expired", digest, claims=claims, kid=kid, live=live)
    try:
        value = status.status(claims.status_list, claims.status_index)
    except IndexError:
        # Signed by a trusted key yet pointing outside its list: an issuer fault, not a revocation.
        return Verdict.denied("malformed", digest, claims=claims, kid=kid, status_checked=True, live=live)
    if value is None:
        if on_missing_status == "accept":
            return Verdict.valid(claims, kid, digest, status_checked=False, live=live)
        return Verdict.denied("revoked", digest, claims=claims, kid=kid, live=live)
    if value == STATUS_VALID:
        return Verdict.valid(claims, kid, digest, live=live)
    # Values outside the 2-bit range cannot come from a real list; refusing them keeps a buggy source fail-closed.
    return Verdict.denied(_STATUS_REASONS.get(value, "revoked"), digest, claims=claims, kid=kid, status_checked=True,
                          live=live)
