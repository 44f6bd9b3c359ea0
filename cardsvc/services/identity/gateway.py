"""The national population registry behind the service: the adapter the settings ask for, and the gateway that adds
the codes every call carries and waits as long as the registry asks (DOMAIN.md §7).

Production talks to the real registry (``http``) with the keys it is given. Outside production a
:class:`DevelopmentRegistry` is injected where the application or a command is assembled (:mod:`cardsvc.registry`):
the records of the in-process stub and the keys of the fake registry. Nothing here imports the demo data or the
fake server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cardsvc.db.models import Member
from cardsvc.services.context import Actor
from cardsvc.services.jobs import JobStopped
from cardsvc.settings import Settings, SettingsError
from integrations.population import (
    BirthDate,
    CallContext,
    HttpRegistry,
    PersonRecord,
    PopulationRegistry,
    Purpose,
    RegistryError,
    RegistrySettings,
    RejectedRequest,
    StubRegistry,
    Throttled,
    make_http_client,
)

log = logging.getLogger("cardsvc.identity")


Sleep = Callable[[float], None]
Clock = Callable[[], datetime]
_T = TypeVar("_T")


@dataclass(frozen=True)
class DevelopmentRegistry:
    """What a service outside production may use in place of the national registry's credentials and answers.

    Built by :func:`cardsvc.demo.registry.development_registry` and injected where the application or a command is
    assembled (:func:`cardsvc.registry.registry_for`), never in production: ``access_key`` and ``secret_key`` are the
    fake registry's keys, used when ours are not set; ``records`` reads what the in-process stub knows.
    """

    access_key: str
    secret_key: str
    records: Callable[[Settings], Sequence[PersonRecord]]


def registry_settings(settings: Settings, development: DevelopmentRegistry | None = None) -> RegistrySettings:
    """The adapter's settings from ours. Outside production, unset keys mean the development registry's keys.

    Raises:
        SettingsError: keys missing in production, or elsewhere without a development registry.
    """
    access_key, secret_key = settings.registry_access_key, settings.registry_secret_key
    if not access_key or not secret_key:
        if settings.environment == "production" or development is None:
            raise SettingsError("CARDSVC_REGISTRY_ACCESS_KEY and CARDSVC_REGISTRY_SECRET_KEY must be set")
        access_key, secret_key = development.access_key, development.secret_key
    return RegistrySettings(
        base_url=settings.registry_base_url,
        access_key=access_key,
        secret_key=secret_key,
        app_name=settings.registry_app_name,
        partner_code=settings.registry_partner_code,
        agency_code=settings.registry_agency_code,
        service_code=settings.registry_service_code,
        timeout=settings.registry_timeout_seconds,
        connect_timeout=settings.registry_connect_timeout_seconds,
        max_retries=settings.registry_max_retries,
        rate_limit_per_second=settings.registry_rate_limit_per_second or None,
        client_cert_file=str(settings.registry_client_cert_file) if settings.registry_client_cert_file else None,
        client_key_file=str(settings.registry_client_key_file) if settings.registry_client_key_file else None,
        ca_file=str(settings.registry_ca_file) if settings.registry_ca_file else None,
    )


def make_registry(settings: Settings, development: DevelopmentRegistry | None = None) -> PopulationRegistry:
    """The registry the settings ask for.

    ``stub``: an in-process :class:`StubRegistry` that knows the development registry's records (by default the
    members in the database, with the demo's deliberate trouble: :func:`cardsvc.demo.registry.registry_records`), read
    once now. ``http``: the :class:`HttpRegistry` adapter; no connection is made before the first call.

    Raises:
        SettingsError: ``stub`` without a development registry (the settings refuse ``stub`` in production), or
            keys missing (:func:`registry_settings`).
    """
    if settings.registry_mode == "stub":
        if development is None:
            raise SettingsError("CARDSVC_REGISTRY_MODE=stub needs the development registry (not in production)")
        return StubRegistry(development.records(settings))
    adapter_settings = registry_settings(settings, development)
    return HttpRegistry(make_http_client(adapter_settings), adapter_settings)


def member_birth_date(member: Member) -> BirthDate:
    """The member's birth date in the registry's form (only the year when that is all we know)."""
    if member.birth_date_precision == "year":
        return BirthDate(member.birth_date.year)
    return BirthDate.of(member.birth_date)


@dataclass(frozen=True)
class RegistryGateway:
    """The registry with the codes every call carries and the waiting policy.

    A ``Throttled`` makes the caller wait ``retry_after`` seconds and repeat the call with the same request id, at
    most ``max_waits`` times. Nothing else is waited for: an open circuit, a timeout or an unreachable registry
    reaches the caller at once, and the caller's run stops and can be resumed later. Once ``stop`` is set (the
    server is stopping), a wait ends at once and no further call is made (:class:`JobStopped`). ``sleep`` is
    injected by tests; by default a wait is a wait on ``stop``.
    """

    registry: PopulationRegistry
    agency_code: str
    service_code: str
    procedure_code: str
    organisation_code: str
    sleep: Sleep | None = None
    max_waits: int = 50
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(cls, settings: Settings, registry: PopulationRegistry, *, stop: threading.Event | None = None
                      ) -> RegistryGateway:
        return cls(registry, settings.registry_agency_code, settings.registry_service_code,
                   settings.registry_procedure_code, settings.registry_organisation_code,
                   stop=stop if stop is not None else threading.Event())

    def context(self, actor: Actor, purpose: Purpose) -> CallContext:
        """A fresh call context naming the officer (or system actor) responsible and the purpose."""
        return CallContext(request_id=CallContext.new_request_id(), procedure_code=self.procedure_code,
                           service_code=self.service_code, agency_code=self.agency_code,
                           officer_code=actor.name, purpose=purpose)

    def call(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation``, waiting as long as the registry asks when it throttles.

        Raises:
            RegistryError: anything else, or still throttled after ``max_waits`` waits.
            JobStopped: ``stop`` is set.
        """
        waits = 0
        while True:
            if self.stop.is_set():
                raise JobStopped
            try:
                return operation()
            except Throttled as exc:
                waits += 1
                if waits > self.max_waits:
                    raise
                log.info("registry asked to wait %.1f s", exc.retry_after)
                if self.sleep is not None:
                    self.sleep(exc.retry_after)
                else:
                    self.stop.wait(exc.retry_after)


def registry_failure_message(exc: RegistryError) -> str:
    """What a run or job that the registry cannot serve stops with, for officers (Vietnamese, then English).

    Registry errors never carry an ID number, so their text may be shown.
    """
    if exc.retryable:
        return (f"Cơ sở dữ liệu quốc gia về dân cư không trả lời ({type(exc).__name__}); chạy lại sau để làm tiếp — "
                f"the population registry is not answering: {exc}; run again later to resume")[:500]
    return (f"Cơ sở dữ liệu quốc gia về dân cư từ chối dịch vụ ({type(exc).__name__}) — "
            f"the population registry refused the service: {exc}")[:500]


def stops_the_run(exc: RegistryError) -> bool:
    """Whether a failed call says that the registry cannot serve us now (down, unreachable, an open circuit, our
    credentials refused, answers we cannot read) rather than something about this one request (refused, or still
    throttled after the waits)."""
    return not isinstance(exc, (RejectedRequest, Throttled))


def ask(gateway: RegistryGateway, operation: Callable[[], _T]) -> _T | RegistryError:
    """The registry's answer, or the registry error it ended with (the caller decides what the error means)."""
    try:
        return gateway.call(operation)
    except RegistryError as exc:
        return exc


class RunAborted(Exception):
    """The run or job cannot go on: the registry cannot serve us now (down, refusing the service). The message says
    why, for officers."""
