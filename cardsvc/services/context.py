"""Who is acting: the officer (or the system) on whose behalf a service call runs, with scope and permissions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, literal
from sqlalchemy.orm import QueryableAttribute

from cardsvc.errors import NotFound, PermissionDenied

PathColumn = ColumnElement[Any] | QueryableAttribute[Any]
WRITE_ROLES = frozenset({"admin", "officer"})


def subtree_condition(column: PathColumn, path: str) -> ColumnElement[bool]:
    """``column`` lies in the subtree whose root has materialised path ``path`` (a B-tree range, no LIKE).

    Paths end with '/', and '0' is the character right after '/', so the subtree is the half-open range
    ``[path, path[:-1] + '0')``.
    """
    return and_(column >= path, column < path[:-1] + "0")


@dataclass(frozen=True)
class Actor:
    """The authenticated party of a request. ``scope_path`` None means the whole tree."""

    kind: Literal["officer", "system", "station"]
    id: int | None
    name: str
    role: str
    scope_path: str | None
    permissions: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None

    def sees(self, path: str | None) -> bool:
        """Whether a chapter path (or an audit entry's path) is inside this actor's scope."""
        if self.scope_path is None:
            return True
        return path is not None and path.startswith(self.scope_path)

    def scope_condition(self, column: PathColumn) -> ColumnElement[bool]:
        if self.scope_path is None:
            return literal(True)
        return subtree_condition(column, self.scope_path)

    def require_visible(self, path: str | None, what: str) -> None:
        """Out-of-scope objects are reported as absent (404), never as forbidden, so that scope leaks nothing."""
        if not self.sees(path):
            raise NotFound(f"{what} not found")

    def require_write(self) -> None:
        if self.role not in WRITE_ROLES:
            raise PermissionDenied("this account may only read", code="read_only")

    def require_admin(self) -> None:
        if self.role != "admin":
            raise PermissionDenied("only an administrator may do this", code="admin_only")

    def has(self, permission: str) -> bool:
        return permission in self.permissions


def system_actor(name: str = "system", request_id: str | None = None) -> Actor:
    """The actor of CLI commands run by the operator on the server itself (whole tree, all permissions)."""
    return Actor("system", None, name, "admin", None, frozenset({"pii"}), request_id)
