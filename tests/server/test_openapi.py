"""The OpenAPI document tells the truth about ids and errors (tests/server/test_schemathesis.py checks it against real
answers): every number a request may carry is bounded so that the database can bind it, and every error answer a
route gives is listed with the one error body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from cardsvc.api.schemas import INT64_MAX

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _integers(fragment: Any, components: dict[str, Any], seen: frozenset[str] = frozenset()
              ) -> Iterator[dict[str, Any]]:
    """Every integer schema inside ``fragment``, following references."""
    if isinstance(fragment, list):
        for item in fragment:
            yield from _integers(item, components, seen)
    elif isinstance(fragment, dict):
        if fragment.get("type") == "integer":
            yield fragment
        reference = fragment.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            if name not in seen:
                yield from _integers(components[name], components, seen | {name})
        for value in fragment.values():
            yield from _integers(value, components, seen)


def _operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_number_in_a_request_fits_a_64_bit_column(app: FastAPI) -> None:
    components = app.openapi()["components"]["schemas"]
    unbounded = [
        (method, path, integer) for method, path, operation in _operations(app)
        for integer in _integers([operation.get("parameters", []), operation.get("requestBody")], components)
        if not (isinstance(integer.get("maximum"), int) and integer["maximum"] <= INT64_MAX
                and isinstance(integer.get("minimum"), int))
    ]
    assert unbounded == []


def test_every_error_answer_is_listed_with_the_error_body(app: FastAPI) -> None:
    document = app.openapi()
    assert set(document["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "details"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in _operations(app):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == ERROR_BODY, (method, path, status)
    statuses = {(method, path): {int(s) for s in operation["responses"] if int(s) >= 400}
                for method, path, operation in _operations(app)}
    # Derived from what each route takes and depends on (cardsvc/api/openapi.py).
    assert statuses["GET", "/healthz"] == set()
    assert statuses["GET", "/v1/me"] == {401}
    assert statuses["GET", "/v1/members/{member_id}"] == {400, 401, 403, 404, 422}
    assert statuses["POST", "/v1/events"] == {400, 401, 403, 404, 409, 413, 422}
    assert statuses["POST", "/v1/auth/token"] == {400, 401, 413, 422, 429}
    assert statuses["POST", "/v1/events/{event_id}/checkins"] == {400, 401, 403, 404, 409, 413, 422, 429}
    assert statuses["GET", "/v1/events/{event_id}/bundle"] == {401, 403, 404, 409, 422}
    assert statuses["GET", "/v1/devices/nfc-writes"] == {401}
    assert statuses["POST", "/v1/devices/nfc-writes/{request_id}/result"] == {400, 401, 404, 409, 413, 422}
