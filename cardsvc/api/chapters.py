"""The chapter tree."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cardsvc.api.deps import OfficerDep, SessionDep
from cardsvc.api.schemas import (
    ChapterCreate,
    ChapterLookupOut,
    ChapterMerge,
    ChapterMove,
    ChapterOut,
    ChapterUpdate,
    Id,
    LevelOut,
    MergeOut,
)
from cardsvc.services import chapters

router = APIRouter(prefix="/v1", tags=["chapters"])


@router.get("/chapter-levels", response_model=list[LevelOut])
def list_levels(_actor: OfficerDep, session: SessionDep) -> list[LevelOut]:
    return [LevelOut(code=lv.code, name_vi=lv.name_vi, name_en=lv.name_en) for lv in chapters.list_levels(session)]


@router.get("/chapters", response_model=list[ChapterOut])
def list_chapters(
    actor: OfficerDep,
    session: SessionDep,
    parent_id: Id | None = None,
    root_id: Id | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    include_merged: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[ChapterOut]:
    """Chapters in your scope: children of ``parent_id``, a subtree (``root_id``), or a search by code/name."""
    found = chapters.list_chapters(session, actor, parent_id=parent_id, root_id=root_id, query=q,
                                   include_merged=include_merged, limit=limit, offset=offset)
    return [ChapterOut.of(c) for c in found]


@router.get("/chapters/by-code/{code}", response_model=ChapterLookupOut)
def find_by_code(code: Annotated[str, Path(max_length=32)], actor: OfficerDep, session: SessionDep
                 ) -> ChapterLookupOut:
    """Resolve a current or former chapter code (after a code change or a merge)."""
    resolved = chapters.find_by_code(session, actor, code)
    return ChapterLookupOut(chapter=ChapterOut.of(resolved.chapter), requested_code=resolved.requested_code,
                            via=resolved.via)


@router.post("/chapters", response_model=ChapterOut, status_code=status.HTTP_201_CREATED)
def create_chapter(body: ChapterCreate, actor: OfficerDep, session: SessionDep) -> ChapterOut:
    return ChapterOut.of(chapters.create_chapter(session, actor, code=body.code, name=body.name,
                                                 level=body.level, parent_id=body.parent_id))


@router.get("/chapters/{chapter_id}", response_model=ChapterOut)
def get_chapter(chapter_id: Id, actor: OfficerDep, session: SessionDep) -> ChapterOut:
    return ChapterOut.of(chapters.get_chapter(session, actor, chapter_id))


@router.patch("/chapters/{chapter_id}", response_model=ChapterOut)
def update_chapter(chapter_id: Id, body: ChapterUpdate, actor: OfficerDep, session: SessionDep) -> ChapterOut:
    """Rename a chapter, change its code (the former code keeps resolving) or its level."""
    return ChapterOut.of(chapters.update_chapter(session, actor, chapter_id, name=body.name, code=body.code,
                                                 level=body.level))


@router.post("/chapters/{chapter_id}/move", response_model=ChapterOut)
def move_chapter(chapter_id: Id, body: ChapterMove, actor: OfficerDep, session: SessionDep) -> ChapterOut:
    return ChapterOut.of(chapters.move_chapter(session, actor, chapter_id, body.parent_id))


@router.post("/chapters/{chapter_id}/merge", response_model=MergeOut)
def merge_chapter(chapter_id: Id, body: ChapterMerge, actor: OfficerDep, session: SessionDep) -> MergeOut:
    """Merge this chapter into ``into_id``: members, sub-chapters and officers move; history stays."""
    result = chapters.merge_chapters(session, actor, chapter_id, body.into_id)
    return MergeOut(source=ChapterOut.of(result.source), target=ChapterOut.of(result.target),
                    members_moved=result.members_moved, children_moved=result.children_moved,
                    officers_moved=result.officers_moved)
