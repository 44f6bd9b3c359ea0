"""Property-based API fuzzing with Schemathesis: every operation of the OpenAPI schema, in-process, with an
administrator's token (the widest reach: every scope, the pii permission) and with a station's device token.

No answer may be a server error, every answer's status must be one the document lists for the operation, and its
body must match the schema listed for that status (the error body included). Valid requests are generated for every
operation, and invalid ones too (wrong types, numbers out of range, missing fields) for the officer's token. The run
is bounded (a few examples per operation, no deadline, no shrinking) and uses the rolled-back database of the other
tests: the ``client`` fixture binds the application to the test's transaction, so whatever an example writes
disappears afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy.orm import Session

from cardsvc.db.models import SigningKey
from cardsvc.security import PiiCipher
from cardsvc.services import cards, events, stations
from integrations.population import StubRegistry
from tests.conftest import SYSTEM, Tree, login, make_member

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# No shrinking: a failure is reported with the example that found it, and the run stays bounded.
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture
def seeded(client: TestClient, app: FastAPI, db: Session, tree: Tree, cipher: PiiCipher,
           signing_keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Some data to find (members with cards, an event with a station) and the two callers' headers."""
    monkeypatch.setitem(app.state._state, "registry", StubRegistry(synthetic=0))
    for index in range(3):
        member = make_member(db, cipher, tree.branch_a if index else tree.branch_b)
        cards.issue_card(db, SYSTEM, app.state.keyring, member.id, validity_years=5, list_size=4096)
    now = datetime.now(UTC)
    event = events.create_event(db, SYSTEM, events.EventSpec(chapter_id=tree.commune_a.id, title="Họp", venue="",
                                                              starts_at=now, ends_at=now + timedelta(hours=2)))
    code = stations.register_station(db, SYSTEM, event.id, "Cửa").provisioning_code
    device = client.post("/v1/devices/provision", json={"code": code}).json()["device_token"]
    # The fuzzer logs in through the per-address limit only once; scans from the device are not limited here.
    app.state.rate_limits.checkin = None
    return {"officer": login(client, "t.admin")["Authorization"], "device": f"Bearer {device}"}


def _can_be_invalid(operation: schemathesis.APIOperation) -> bool:
    """Whether a request of the operation can be made invalid: it has a body, or a parameter whose schema is more than
    free text (a number, a choice, a pattern, a length)."""
    definition = operation.definition.raw
    schemas = [parameter.get("schema", {}) for parameter in definition.get("parameters", [])]
    return "requestBody" in definition or any(set(schema) - {"type", "title"} or schema.get("type") != "string"
                                              for schema in schemas)


def _fuzz(app: FastAPI, authorization: str, *, path_regex: str | None, max_examples: int,
          mode: GenerationMode = GenerationMode.POSITIVE) -> tuple[list[str], int, int]:
    """Run every operation (matching ``path_regex``) with valid requests, or with invalid ones (``NEGATIVE``: the
    operations whose requests can be invalid); return the failures (one line each), the number of operations run and
    the number of requests sent."""
    # The schemathesis pytest plugin does not run under pytest 9 yet; its Python API is driven directly instead.
    # Signing out everywhere would end the fuzzer's own token and turn every later operation into a 401;
    # tests/server/test_auth.py covers it.
    api = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex="/sign-out-everywhere$")
    if path_regex:
        api = api.include(path_regex=path_regex)
    failures: list[str] = []
    operations = requests = 0
    for result in api.get_all_operations():
        operation = result.ok()
        if mode == GenerationMode.NEGATIVE and not _can_be_invalid(operation):
            continue
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(FUZZ, max_examples=max_examples)
        def run(case: schemathesis.Case) -> None:
            nonlocal requests
            requests += 1
            case.call_and_validate(headers={"Authorization": authorization}, checks=CHECKS)

        try:
            run()
        # Collected so that one run reports every failing operation (Schemathesis raises a BaseExceptionGroup).
        except (Exception, FailureGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {type(exc).__name__}: "
                            f"{str(exc)[:600]}")
    return failures, operations, requests


def test_api_with_an_officer_token(app: FastAPI, seeded: dict[str, str]) -> None:
    failures, operations, requests = _fuzz(app, seeded["officer"], path_regex=None, max_examples=12)
    assert not failures, "\n".join(failures)
    assert operations > 60 and requests > 5 * operations


def test_invalid_requests_get_a_documented_answer(app: FastAPI, seeded: dict[str, str]) -> None:
    """Ids beyond 64 bits, wrong types, missing fields: a 4xx the document lists, with the error body."""
    failures, operations, requests = _fuzz(app, seeded["officer"], path_regex=None, max_examples=6,
                                           mode=GenerationMode.NEGATIVE)
    assert not failures, "\n".join(failures)
    assert operations > 50 and requests > 3 * operations


def test_api_with_a_device_token(app: FastAPI, seeded: dict[str, str]) -> None:
    failures, operations, requests = _fuzz(app, seeded["device"], path_regex="^/v1/(events|devices)",
                                           max_examples=10)
    assert not failures, "\n".join(failures)
    assert operations > 10 and requests > 5 * operations
