"""Card verification core, portable to door stations (pure; never imports cardsvc, holds no private key).

Public API:

* :func:`verification.verify.verify` ``(scanned, trust, status, now, *, on_missing_status) -> Verdict``:
  the door decision; never raises on bad input.
* :class:`verification.verify.Verdict`, :class:`verification.verify.StatusSource` (Protocol) and
  :class:`verification.verify.StatusLists` (its implementation over verified lists).
* :func:`verification.trust.verify_trust_bundle` and :func:`verification.status.verify_status_list`: accept the
  downloaded trust material only when signed by the pinned :class:`verification.trust.TrustAnchor`.
* :mod:`verification.format`: the wire format (``parse_credential``, ``credential_from_text``, ``CardClaims``).
* :mod:`verification.errors`: ``CredentialError`` with its stable reason codes, and ``TrustError``.
"""
