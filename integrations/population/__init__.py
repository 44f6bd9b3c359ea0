"""The national population registry (DOMAIN.md §7): the Protocol, its value types and errors, an in-process stub,
a fake HTTP server and the HTTP adapter.

Pure of the service: nothing here imports ``cardsvc``. Typical use::

    settings = RegistrySettings(base_url=..., access_key=..., secret_key=..., app_name=..., partner_code=...,
                                agency_code=..., service_code=...)
    registry: PopulationRegistry = HttpRegistry(make_http_client(settings), settings)
    context = settings.context(officer_code="CB001", purpose=Purpose.IDENTITY_VERIFICATION, procedure_code="HV01")
    result = registry.verify_identity(context, VerifyRequest(id_number, full_name, BirthDate.parse("1990-05-01")))
"""

from integrations.population.errors import (
    AuthFailure,
    BadResponse,
    CircuitOpen,
    RegistryError,
    RegistryTimeout,
    RejectedRequest,
    Throttled,
    Unavailable,
)
from integrations.population.http_registry import (
    CircuitState,
    HttpRegistry,
    RegistrySettings,
    make_http_client,
    make_ssl_context,
)
from integrations.population.models import (
    PURPOSE_OPERATIONS,
    BatchState,
    BatchStatus,
    BirthDate,
    CallContext,
    FieldMatch,
    Gender,
    LookupRequest,
    MembershipFact,
    MembershipStatus,
    Notification,
    NotificationKind,
    Operation,
    Outcome,
    PersonName,
    PersonRecord,
    Purpose,
    VerifyRequest,
    VerifyResult,
)
from integrations.population.names import NameComparison, compare_names
from integrations.population.protocol import PopulationRegistry
from integrations.population.stub import StubRegistry, SyntheticPerson, Trouble

__all__ = [
    "PURPOSE_OPERATIONS",
    "AuthFailure",
    "BadResponse",
    "BatchState",
    "BatchStatus",
    "BirthDate",
    "CallContext",
    "CircuitOpen",
    "CircuitState",
    "FieldMatch",
    "Gender",
    "HttpRegistry",
    "LookupRequest",
    "MembershipFact",
    "MembershipStatus",
    "NameComparison",
    "Notification",
    "NotificationKind",
    "Operation",
    "Outcome",
    "PersonName",
    "PersonRecord",
    "PopulationRegistry",
    "Purpose",
    "RegistryError",
    "RegistrySettings",
    "RegistryTimeout",
    "RejectedRequest",
    "StubRegistry",
    "SyntheticPerson",
    "Throttled",
    "Trouble",
    "Unavailable",
    "VerifyRequest",
    "VerifyResult",
    "compare_names",
    "make_http_client",
    "make_ssl_context",
]
