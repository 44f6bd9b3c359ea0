"""The chapter tree: create, rename, move and merge chapters, find them by current or former code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, String, func, literal, select, update
from sqlalchemy.orm import Session

from cardsvc.db.models import Chapter, ChapterCodeAlias, ChapterLevel, Member, Officer
from cardsvc.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from cardsvc.normalize import fold, refuse_invisible
from cardsvc.services import audit
from cardsvc.services.context import Actor, subtree_condition
from integrations.errors import InputError

CHAPTER_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
MAX_DEPTH = 12


def normalize_code(code: str) -> str:
    value = code.strip().upper()
    if not CHAPTER_CODE_RE.fullmatch(value):
        raise ValidationFailed(
            "a chapter code is 1 to 32 letters A-Z, digits, '.', '_' or '-'",
            details=[{"field": "code", "problem": "invalid_format"}],
        )
    return value


def get_chapter(session: Session, actor: Actor, chapter_id: int) -> Chapter:
    chapter = session.get(Chapter, chapter_id)
    if chapter is None:
        raise NotFound("chapter not found")
    actor.require_visible(chapter.path, "chapter")
    return chapter


@dataclass(frozen=True)
class ResolvedChapter:
    chapter: Chapter
    requested_code: str
    via: str  # "code", "former_code" or "merged"


def find_by_code(session: Session, actor: Actor, code: str) -> ResolvedChapter:
    """Resolve a chapter code, current or former, following merges to the chapter that holds the members now."""
    wanted = code.strip().upper()
    chapter = session.scalar(select(Chapter).where(Chapter.code == wanted))
    via = "code"
    if chapter is None:
        alias = session.get(ChapterCodeAlias, wanted)
        if alias is not None:
            chapter = session.get(Chapter, alias.chapter_id)
            via = "former_code"
    hops = 0
    while chapter is not None and chapter.status == "merged" and chapter.merged_into_id is not None:
        chapter = session.get(Chapter, chapter.merged_into_id)
        via = "merged"
        hops += 1
        if hops > 100:
            raise Conflict("chapter merge chain is too long", code="merge_chain")
    if chapter is None or not actor.sees(chapter.path):
        raise NotFound(f"no chapter with code {wanted}")
    return ResolvedChapter(chapter, wanted, via)


def list_chapters(
    session: Session,
    actor: Actor,
    *,
    parent_id: int | None = None,
    root_id: int | None = None,
    query: str | None = None,
    include_merged: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Chapter]:
    """Chapters in scope: children of ``parent_id``, or the subtree of ``root_id``, optionally filtered by name."""
    stmt = select(Chapter).where(actor.scope_condition(Chapter.path))
    if parent_id is not None:
        stmt = stmt.where(Chapter.parent_id == get_chapter(session, actor, parent_id).id)
    if root_id is not None:
        stmt = stmt.where(subtree_condition(Chapter.path, get_chapter(session, actor, root_id).path))
    if not include_merged:
        stmt = stmt.where(Chapter.status == "active")
    if query:
        term = query.strip().upper()
        # autoescape: a '%' or '_' typed into the search box is a character of the name, not a wildcard.
        stmt = stmt.where((Chapter.code == term) | (Chapter.name.contains(query.strip(), autoescape=True)))
    stmt = stmt.order_by(Chapter.path).limit(limit).offset(offset)
    return session.scalars(stmt).all()


def _ensure_code_free(session: Session, code: str) -> None:
    in_use = session.scalar(select(Chapter.id).where(Chapter.code == code)) is not None
    if in_use or session.get(ChapterCodeAlias, code) is not None:
        raise Conflict(f"chapter code {code} is already used (now or formerly)", code="duplicate_code")


def _check_level(session: Session, level: str) -> str:
    if session.get(ChapterLevel, level) is None:
        known = ", ".join(session.scalars(select(ChapterLevel.code).order_by(ChapterLevel.code)))
        raise ValidationFailed(
            f"unknown chapter level {level!r}; known levels: {known}",
            details=[{"field": "level", "problem": "unknown_level"}],
        )
    return level


def _clean_name(name: str) -> str:
    # A door station shows the member's chapter name next to her name: the same invisible characters are refused.
    try:
        refuse_invisible(name, subject_en="The chapter name", subject_vi="Tên chi hội")
    except InputError as exc:
        raise ValidationFailed(exc.message_en, details=[{"field": "name", "code": exc.code, "message": exc.message_en,
                                                         "message_vi": exc.message_vi}]) from exc
    value = " ".join(name.split())
    if not value or not fold(value):
        raise ValidationFailed("the chapter name is empty", details=[{"field": "name", "problem": "empty"}])
    return value


def _writable_parent(session: Session, actor: Actor, parent_id: int) -> Chapter:
    parent = get_chapter(session, actor, parent_id)
    if parent.status != "active":
        raise Conflict("that chapter was merged into another one", code="chapter_merged")
    return parent


def _require_below_scope_root(actor: Actor, chapter: Chapter) -> None:
    """An officer may reshape chapters below her own scope root, never the root itself (that would change her
    own scope); only an officer higher up, or an admin, can."""
    if actor.scope_path is not None and chapter.path == actor.scope_path:
        raise PermissionDenied("only a higher-level officer can change your own chapter", code="scope_root")


def create_chapter(
    session: Session, actor: Actor, *, code: str, name: str, level: str, parent_id: int | None
) -> Chapter:
    actor.require_write()
    code = normalize_code(code)
    name = _clean_name(name)
    _check_level(session, level)
    if parent_id is None:
        actor.require_admin()
        parent: Chapter | None = None
    else:
        parent = _writable_parent(session, actor, parent_id)
        if parent.depth + 1 > MAX_DEPTH:
            raise Conflict(f"the tree may be at most {MAX_DEPTH} levels deep", code="too_deep")
    _ensure_code_free(session, code)
    chapter = Chapter(
        code=code,
        name=name,
        level=level,
        parent_id=parent.id if parent else None,
        path="/",
        depth=parent.depth + 1 if parent else 0,
        status="active",
    )
    session.add(chapter)
    session.flush()
    chapter.path = f"{parent.path if parent else '/'}{chapter.id}/"
    audit.record(
        session, actor, "chapter.create", target_type="chapter", target_id=chapter.id,
        chapter_path=chapter.path, details={"code": code, "name": name, "level": level},
    )
    session.commit()
    return chapter


def update_chapter(
    session: Session,
    actor: Actor,
    chapter_id: int,
    *,
    name: str | None = None,
    code: str | None = None,
    level: str | None = None,
) -> Chapter:
    """Rename a chapter and/or change its code (the former code stays findable) or level."""
    actor.require_write()
    chapter = get_chapter(session, actor, chapter_id)
    _require_below_scope_root(actor, chapter)
    if chapter.status != "active":
        raise Conflict("that chapter was merged into another one", code="chapter_merged")
    changes: dict[str, object] = {}
    if name is not None and _clean_name(name) != chapter.name:
        changes["name"] = {"from": chapter.name, "to": _clean_name(name)}
        chapter.name = _clean_name(name)
    if code is not None and normalize_code(code) != chapter.code:
        new_code = normalize_code(code)
        alias = session.get(ChapterCodeAlias, new_code)
        if alias is not None and alias.chapter_id == chapter.id:
            session.delete(alias)  # Going back to a former code of the same chapter.
            session.flush()
        else:
            _ensure_code_free(session, new_code)
        session.add(ChapterCodeAlias(code=chapter.code, chapter_id=chapter.id))
        changes["code"] = {"from": chapter.code, "to": new_code}
        chapter.code = new_code
    if level is not None and level != chapter.level:
        changes["level"] = {"from": chapter.level, "to": _check_level(session, level)}
        chapter.level = level
    if changes:
        audit.record(
            session, actor, "chapter.update", target_type="chapter", target_id=chapter.id,
            chapter_path=chapter.path, details=changes,
        )
    session.commit()
    return chapter


def _reparent(session: Session, chapter: Chapter, new_parent: Chapter) -> None:
    """Move ``chapter`` and its whole subtree under ``new_parent`` with two set-based UPDATEs."""
    old_prefix = chapter.path
    new_prefix = f"{new_parent.path}{chapter.id}/"
    depth_delta = new_parent.depth + 1 - chapter.depth
    if new_parent.depth + 1 + _subtree_height(session, chapter) > MAX_DEPTH:
        raise Conflict(f"the tree may be at most {MAX_DEPTH} levels deep", code="too_deep")
    session.execute(
        update(Chapter)
        .where(subtree_condition(Chapter.path, old_prefix))
        .values(
            path=literal(new_prefix, String()).op("||")(func.substr(Chapter.path, len(old_prefix) + 1)),
            depth=Chapter.depth + depth_delta,
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Chapter).where(Chapter.id == chapter.id).values(parent_id=new_parent.id)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def _subtree_height(session: Session, chapter: Chapter) -> int:
    deepest = session.scalar(select(func.max(Chapter.depth)).where(subtree_condition(Chapter.path, chapter.path)))
    return (deepest or chapter.depth) - chapter.depth


def move_chapter(session: Session, actor: Actor, chapter_id: int, new_parent_id: int) -> Chapter:
    """Re-parent a chapter (with its subtree, members and officers) under another chapter in scope."""
    actor.require_write()
    chapter = get_chapter(session, actor, chapter_id)
    _require_below_scope_root(actor, chapter)
    if chapter.status != "active":
        raise Conflict("that chapter was merged into another one", code="chapter_merged")
    new_parent = _writable_parent(session, actor, new_parent_id)
    if new_parent.path.startswith(chapter.path):
        raise Conflict("a chapter cannot be moved under itself or its own sub-chapter", code="chapter_cycle")
    if chapter.parent_id == new_parent.id:
        return chapter
    old_path, old_parent_id = chapter.path, chapter.parent_id
    _reparent(session, chapter, new_parent)
    chapter = session.get_one(Chapter, chapter_id)
    audit.record(
        session, actor, "chapter.move", target_type="chapter", target_id=chapter.id, chapter_path=chapter.path,
        details={"from_parent_id": old_parent_id, "to_parent_id": new_parent.id, "from_path": old_path},
    )
    session.commit()
    return chapter


@dataclass(frozen=True)
class MergeResult:
    source: Chapter
    target: Chapter
    members_moved: int
    children_moved: int
    officers_moved: int


def merge_chapters(session: Session, actor: Actor, source_id: int, target_id: int) -> MergeResult:
    """Merge ``source`` into ``target``: its members, sub-chapters and officers move to ``target``; ``source``
    stays as a merged row so that its code, history and audit trail remain findable."""
    actor.require_write()
    source = get_chapter(session, actor, source_id)
    _require_below_scope_root(actor, source)
    target = _writable_parent(session, actor, target_id)
    if source.status != "active":
        raise Conflict("that chapter was already merged", code="chapter_merged")
    if source.id == target.id or target.path.startswith(source.path):
        raise Conflict("a chapter cannot be merged into itself or its own sub-chapter", code="chapter_cycle")
    members_moved = _count(session, select(func.count()).where(Member.chapter_id == source.id))
    officers_moved = _count(session, select(func.count()).where(Officer.chapter_id == source.id))
    session.execute(
        update(Member).where(Member.chapter_id == source.id).values(chapter_id=target.id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Officer).where(Officer.chapter_id == source.id).values(chapter_id=target.id)
        .execution_options(synchronize_session=False)
    )
    children = session.scalars(
        select(Chapter).where(Chapter.parent_id == source.id, Chapter.status == "active")
    ).all()
    child_ids = [child.id for child in children]
    for child_id in child_ids:
        _reparent(session, session.get_one(Chapter, child_id), session.get_one(Chapter, target.id))
    source = session.get_one(Chapter, source_id)
    target = session.get_one(Chapter, target_id)
    source.status = "merged"
    source.merged_into_id = target.id
    details = {
        "source_code": source.code, "target_code": target.code, "members_moved": members_moved,
        "children_moved": len(child_ids), "officers_moved": officers_moved,
    }
    for path in (source.path, target.path):
        audit.record(
            session, actor, "chapter.merge", target_type="chapter", target_id=source.id,
            chapter_path=path, details=details,
        )
    session.commit()
    return MergeResult(source, target, members_moved, len(child_ids), officers_moved)


def _count(session: Session, stmt: Select[int]) -> int:
    return session.scalar(stmt) or 0


def list_levels(session: Session) -> Sequence[ChapterLevel]:
    return session.scalars(select(ChapterLevel).order_by(ChapterLevel.code)).all()
