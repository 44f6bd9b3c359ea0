"""The OpenAPI document with the error answers each route gives, derived from what the route takes and depends on.

FastAPI documents a route's success answer and a 422 of its own shape; the service answers every error with
``{"code", "message", "details"}`` (:class:`cardsvc.api.schemas.ErrorBody`) and with more statuses. Rather than
listing them route by route, :func:`error_statuses` derives them:

* a request body: 400 (not JSON), 413 (too large), 422;
* query parameters: 400 (a NUL character), 422;
* an id in the path, or in the query or body (a parameter of type ``Id``): 404, also for objects outside the scope;
* a bearer token (officer, station or both): 401; an officer's change (any method but GET), or a route a station of
  another event may call: 403; a change: 409 (a conflicting state, or the database's safety net for a race);
* the signing keys: 409 (no active key to sign with);
* the login rate limit: 429.

A route adds what its dependencies cannot tell with ``responses={status: {...}}`` in its decorator (a permission a
GET needs, a rate limit taken inside the route); the error body schema is filled in for those too.
``tests/server/test_schemathesis.py`` checks the result against the server's real answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from cardsvc.api.deps import (
    current_caller,
    current_officer,
    current_station,
    get_keyring,
    limit_login_rate,
    oauth2_scheme,
)
from cardsvc.api.schemas import INT64_MAX, ErrorBody

ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}
FASTAPI_422_DESCRIPTION = "Validation Error"
DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, or the request holds a NUL character",
    401: "Not authenticated: no token, an invalid or expired one, or one of the wrong kind",
    403: "Authenticated but not allowed: a read-only account, a missing permission, or another event's station",
    404: "Not found, or outside the caller's scope (the two are never told apart)",
    409: "Conflicts with the current state, or with a change made at the same moment (retry)",
    413: "The request body is too large",
    422: "Invalid input: `details` names each field (or row and column)",
    429: "Too many requests: retry after `Retry-After` seconds",
}


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependency_calls(dependency)


def _names_an_id(fragment: Any, components: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """Whether a schema fragment holds an ``Id`` (an integer bounded by the 64-bit maximum), following ``$ref``s."""
    if isinstance(fragment, list):
        return any(_names_an_id(item, components, seen) for item in fragment)
    if not isinstance(fragment, dict):
        return False
    if fragment.get("type") == "integer" and fragment.get("maximum") == INT64_MAX:
        return True
    reference = fragment.get("$ref")
    if isinstance(reference, str):
        name = reference.rsplit("/", 1)[-1]
        return name not in seen and _names_an_id(components.get(name), components, seen | {name})
    return any(_names_an_id(value, components, seen) for value in fragment.values())


def _restore_integer_bounds(fragment: Any) -> None:
    """FastAPI's OpenAPI model keeps ``minimum``/``maximum`` as floats, in which an id's maximum 2**63 - 1 becomes
    2**63: give integer schemas their integer bounds back."""
    if isinstance(fragment, list):
        for item in fragment:
            _restore_integer_bounds(item)
    if not isinstance(fragment, dict):
        return
    for bound in ("minimum", "maximum"):
        value = fragment.get(bound)
        if fragment.get("type") == "integer" and isinstance(value, float):
            fragment[bound] = INT64_MAX if value == float(INT64_MAX) else int(value)
    for value in fragment.values():
        _restore_integer_bounds(value)


def error_statuses(route: APIRoute, method: str, operation: dict[str, Any], components: dict[str, Any]) -> set[int]:
    """The error statuses ``route`` answers with for ``method``, derived from its parameters and dependencies."""
    calls = set(_dependency_calls(route.dependant))
    parameters = operation.get("parameters", [])
    statuses: set[int] = set()
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if any(parameter["in"] == "query" for parameter in parameters):
        statuses |= {400, 422}
    if route.dependant.path_params or _names_an_id([parameters, operation.get("requestBody")], components):
        statuses.add(404)
    if oauth2_scheme in calls:
        statuses.add(401)
        changes = method != "GET"
        # Routes that take the token themselves (check-in) take an officer's as well as a station's.
        officers = current_officer in calls or current_station not in calls
        if (officers and changes) or current_caller in calls:
            statuses.add(403)
        if changes:
            statuses.add(409)
    if get_keyring in calls:
        statuses.add(409)  # no active signing key of the purpose the route signs with
    if limit_login_rate in calls:
        statuses.add(429)
    return statuses


def _operations(routes: Sequence[BaseRoute]) -> Iterator[tuple[APIRoute, str, str]]:
    """(route, path, method) of every documented operation; routers included in the app are walked too."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema and context.path_format:
            for method in sorted(route.methods or ()):
                yield route, context.path_format, method


def document_errors(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """Add the derived error answers, all with the error body's schema, to every operation of ``schema``."""
    _restore_integer_bounds(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for route, path, method in _operations(routes):
        operation = schema["paths"][path][method.lower()]
        responses = operation.setdefault("responses", {})
        declared = {int(status) for status in responses if status.isdigit() and int(status) >= 400}
        for status in sorted(declared | error_statuses(route, method, operation, components)):
            response = responses.setdefault(str(status), {})
            if response.get("description") in (None, "", FASTAPI_422_DESCRIPTION):
                response["description"] = DESCRIPTIONS.get(status, "Error")
            response["content"] = {"application/json": {"schema": ERROR_BODY_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the document with the derived error answers."""
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        # FastAPI keeps its document until a route is added; a new document is extended once.
        schema = generate()
        if not documented or documented[0] is not schema:
            documented[:] = [document_errors(schema, app.routes)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
