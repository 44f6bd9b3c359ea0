"""The :class:`PopulationRegistry` Protocol every adapter implements (stub, HTTP adapter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from integrations.population.models import (
    BatchStatus,
    CallContext,
    LookupRequest,
    MembershipFact,
    Notification,
    PersonRecord,
    VerifyRequest,
    VerifyResult,
)

__all__ = ["PopulationRegistry"]


class PopulationRegistry(Protocol):
    """The national population registry as the union sees it through the data exchange platform.

    Every method takes the :class:`CallContext` of the call (request id, procedure, service, agency, officer,
    purpose). Every method may raise any :class:`~integrations.population.errors.RegistryError`:
    ``RejectedRequest("purpose_not_allowed")`` when the purpose does not cover the operation (see
    :data:`~integrations.population.models.PURPOSE_OPERATIONS`), ``RejectedRequest("invalid_id_number")`` for a
    number that is not 12 or 9 digits, and the retryable ``RegistryTimeout``, ``Throttled`` and ``Unavailable``.
    """

    def verify_identity(self, context: CallContext, request: VerifyRequest) -> VerifyResult:
        """Compare an ID number, full name, birth date (or year) and optional gender with the registry.

        Returns:
            Per-field results and the overall outcome (matched / mismatch / not_found / deceased).
        """
        ...

    def lookup(self, context: CallContext, request: LookupRequest) -> PersonRecord | None:
        """Return the registry's record of a number, or None when it is unknown.

        Raises:
            RejectedRequest: ``purpose_not_allowed`` unless the purpose is ``record_correction``.
        """
        ...

    def submit_batch(self, context: CallContext, requests: Sequence[VerifyRequest]) -> str:
        """Submit verifications to be answered asynchronously; returns the batch id to poll.

        Raises:
            RejectedRequest: ``empty_batch``, ``batch_too_large``, ``invalid_id_number`` (the whole batch).
        """
        ...

    def poll_batch(self, context: CallContext, batch_id: str) -> BatchStatus:
        """The state of a batch; when done, the results in request order.

        Raises:
            RejectedRequest: ``unknown_batch``.
        """
        ...

    def publish_membership(self, context: CallContext, fact: MembershipFact) -> None:
        """Publish (or replace) the membership fact of a member who consented.

        Raises:
            RejectedRequest: ``unknown_citizen`` when the registry does not know the number.
        """
        ...

    def withdraw_membership(self, context: CallContext, id_number: str, organisation_code: str) -> None:
        """Withdraw the published membership fact (consent withdrawn or membership ended). Idempotent."""
        ...

    def notifications(self, context: CallContext, since_cursor: str | None, limit: int = 100) -> tuple[
        list[Notification], str
    ]:
        """Registry events after ``since_cursor`` (None: from the start), oldest first, at most ``limit``.

        Returns:
            The events and the cursor to pass next time (unchanged when there is nothing new).

        Raises:
            RejectedRequest: ``invalid_cursor``.
        """
        ...
