"""The chapter tree: create, rename, move, merge, former codes, subtree queries, scope."""

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsvc.db.models import AuditEntry, Chapter, Member
from cardsvc.security import PiiCipher
from cardsvc.services import chapters
from cardsvc.services.context import subtree_condition
from tests.conftest import SYSTEM, Tree, login, make_member


def test_create_chapter_builds_the_path(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    response = client.post("/v1/chapters", json={"code": "t-hni-bd-02", "name": "Chi hội  2", "level": "branch",
                                                  "parent_id": tree.commune_a.id}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["code"] == "T-HNI-BD-02"
    assert body["name"] == "Chi hội 2"
    assert body["depth"] == 3
    assert body["parent_id"] == tree.commune_a.id


def test_level_names_are_data(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    levels = {lv["code"] for lv in client.get("/v1/chapter-levels", headers=headers).json()}
    assert {"central", "province", "commune", "branch", "group", "special"} <= levels
    bad = client.post("/v1/chapters", json={"code": "X1", "name": "X", "level": "district",
                                            "parent_id": tree.prov_a.id}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "level"


def test_officer_cannot_create_outside_scope_or_at_the_root(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    out = client.post("/v1/chapters", json={"code": "X2", "name": "X", "level": "commune",
                                            "parent_id": tree.prov_b.id}, headers=headers)
    assert out.status_code == 404
    root = client.post("/v1/chapters", json={"code": "X3", "name": "X", "level": "central"}, headers=headers)
    assert root.status_code == 403


def test_duplicate_code_is_409(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    response = client.post("/v1/chapters", json={"code": "T-HCM", "name": "X", "level": "province",
                                                 "parent_id": tree.central.id}, headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_code"


def test_a_chapter_name_with_invisible_characters_is_refused(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    created = client.post("/v1/chapters", json={"code": "T-HNI-BD-03", "name": "Chi hội \u202e3", "level": "branch",
                                                "parent_id": tree.commune_a.id}, headers=headers)
    renamed = client.patch(f"/v1/chapters/{tree.branch_a.id}", json={"name": "Chi\u200b hội 1"}, headers=headers)
    for response in (created, renamed):
        assert response.status_code == 422, response.text
        [detail] = response.json()["details"]
        assert (detail["field"], detail["code"]) == ("name", "invisible_characters")
        assert "Tên chi hội có ký tự ẩn" in detail["message_vi"]


def test_a_chapter_code_is_at_most_32_characters(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    for code in ("T-" + "A" * 30, "t-" + "b" * 30):
        created = client.post("/v1/chapters", json={"code": code, "name": "Chi hội 32", "level": "branch",
                                                    "parent_id": tree.commune_a.id}, headers=headers)
        assert created.status_code == 201, created.text
        assert len(created.json()["code"]) == 32
    for body in ({"code": "T-" + "A" * 31, "name": "X", "level": "branch", "parent_id": tree.commune_a.id},
                 {"code": " " + "B" * 31 + "\u202e", "name": "X", "level": "branch", "parent_id": tree.commune_a.id}):
        assert client.post("/v1/chapters", json=body, headers=headers).status_code == 422
    too_long = client.patch(f"/v1/chapters/{tree.branch_a.id}", json={"code": "T-" + "C" * 31}, headers=headers)
    assert too_long.status_code == 422


def test_rename_and_code_change_keep_the_former_code_findable(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    response = client.patch(f"/v1/chapters/{tree.commune_a.id}", json={"name": "Phường Ba Đình mới",
                                                                       "code": "T-HNI-BADINH"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == "T-HNI-BADINH"
    found = client.get("/v1/chapters/by-code/t-hni-bd", headers=headers).json()
    assert found["chapter"]["id"] == tree.commune_a.id
    assert found["via"] == "former_code"
    # The former code cannot be given to another chapter.
    taken = client.post("/v1/chapters", json={"code": "T-HNI-BD", "name": "X", "level": "commune",
                                              "parent_id": tree.prov_a.id}, headers=headers)
    assert taken.status_code == 409


def test_officer_cannot_reshape_her_own_scope_root(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.a")
    response = client.patch(f"/v1/chapters/{tree.prov_a.id}", json={"name": "X"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "scope_root"


def test_move_rewrites_the_whole_subtree(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a)
    headers = login(client, "t.admin")
    response = client.post(f"/v1/chapters/{tree.commune_a.id}/move", json={"parent_id": tree.prov_b.id},
                           headers=headers)
    assert response.status_code == 200, response.text
    db.expire_all()
    branch = db.get_one(Chapter, tree.branch_a.id)
    assert branch.path == f"{tree.central.path}{tree.prov_b.id}/{tree.commune_a.id}/{tree.branch_a.id}/"
    assert branch.depth == 3
    # The member moved with her branch: province B's officer sees her now, province A's does not.
    assert client.get(f"/v1/members/{member.id}", headers=login(client, "t.officer.b")).status_code == 200
    assert client.get(f"/v1/members/{member.id}", headers=login(client, "t.officer.a")).status_code == 404


def test_move_under_own_descendant_is_refused(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    response = client.post(f"/v1/chapters/{tree.prov_a.id}/move", json={"parent_id": tree.branch_a.id},
                           headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "chapter_cycle"


def test_merge_moves_members_children_and_keeps_history(client: TestClient, tree: Tree, db: Session,
                                                        cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.commune_a)
    headers = login(client, "t.officer.a")
    response = client.post(f"/v1/chapters/{tree.commune_a.id}/merge", json={"into_id": tree.commune_a2.id},
                           headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["members_moved"] == 1
    assert body["children_moved"] == 1
    assert body["officers_moved"] == 1  # t.officer.commune now looks after the merged commune
    assert body["source"]["status"] == "merged"
    db.expire_all()
    assert db.get_one(Member, member.id).chapter_id == tree.commune_a2.id
    assert db.get_one(Chapter, tree.branch_a.id).parent_id == tree.commune_a2.id
    found = client.get("/v1/chapters/by-code/T-HNI-BD", headers=headers).json()
    assert found["via"] == "merged"
    assert found["chapter"]["id"] == tree.commune_a2.id
    # Merged chapters are hidden from listings unless asked for, and accept no new members.
    listed = {c["id"] for c in client.get(f"/v1/chapters?parent_id={tree.prov_a.id}", headers=headers).json()}
    assert tree.commune_a.id not in listed
    with_merged = client.get(f"/v1/chapters?parent_id={tree.prov_a.id}&include_merged=true", headers=headers)
    assert tree.commune_a.id in {c["id"] for c in with_merged.json()}
    history = client.get(f"/v1/audit?target_type=chapter&target_id={tree.commune_a.id}", headers=headers).json()
    assert {"chapter.create", "chapter.merge"} <= {e["action"] for e in history}


def test_merge_into_itself_or_a_descendant_is_refused(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.admin")
    for target in (tree.commune_a.id, tree.branch_a.id):
        response = client.post(f"/v1/chapters/{tree.commune_a.id}/merge", json={"into_id": target},
                               headers=headers)
        assert response.status_code == 409


def test_subtree_condition_matches_descendants_only(db: Session, tree: Tree) -> None:
    # A sibling whose id starts with the same digits must not fall inside the range.
    ids = set(db.scalars(select(Chapter.id).where(subtree_condition(Chapter.path, tree.prov_a.path))))
    assert ids == {tree.prov_a.id, tree.commune_a.id, tree.commune_a2.id, tree.branch_a.id}
    for n in range(12):
        chapters.create_chapter(db, SYSTEM, code=f"T-SIB-{n}", name="Sibling", level="province",
                                parent_id=tree.central.id)
    inside = db.scalar(select(func.count()).where(subtree_condition(Chapter.path, tree.prov_a.path)))
    assert inside == 4


def test_listing_is_scoped(client: TestClient, tree: Tree) -> None:
    headers = login(client, "t.officer.b")
    codes = {c["code"] for c in client.get("/v1/chapters?limit=1000", headers=headers).json()}
    assert codes == {"T-HCM", "T-HCM-SG", "T-HCM-SG-01"}
    assert client.get("/v1/chapters/by-code/T-HNI", headers=headers).status_code == 404


def test_chapter_writes_are_audited(client: TestClient, tree: Tree, db: Session) -> None:
    headers = login(client, "t.officer.a")
    client.patch(f"/v1/chapters/{tree.commune_a.id}", json={"name": "Tên mới"}, headers=headers)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "chapter.update")).one()
    assert entry.actor_name == "t.officer.a"
    assert entry.details["name"]["to"] == "Tên mới"
    assert entry.request_id


def test_name_search_takes_percent_and_underscore_literally(client: TestClient, tree: Tree, db: Session) -> None:
    chapters.create_chapter(db, SYSTEM, code="T-HNI-BD-02", name="Tổ 100% nữ_A", level="branch",
                            parent_id=tree.commune_a.id)
    headers = login(client, "t.officer.a")

    def names(query: str) -> set[str]:
        response = client.get("/v1/chapters", params={"q": query}, headers=headers)
        assert response.status_code == 200
        return {c["name"] for c in response.json()}

    assert names("%") == {"Tổ 100% nữ_A"}
    assert names("_") == {"Tổ 100% nữ_A"}
    assert names("Chi h_i") == set()
    assert names("0% n") == {"Tổ 100% nữ_A"}
    assert names("\\") == set()
