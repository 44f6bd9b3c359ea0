from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cardsvc.security import PiiCipher
from tests.conftest import Tree, login, make_member


def test_create_and_read_member(client: TestClient, tree: Tree, db: Session, cipher: PiiCipher) -> None:
    member = make_member(db, cipher, tree.branch_a, full_name="Nguyễn Thị Phương Thảo", birth_date=date(1990, 1, 2))
    headers = login(client, "t.officer.a")
    response = client.get(f"/v1/members/{member.id}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["full_name"] == "Nguyễn Thị Phương Thảo"
    assert body["id_number"].startswith("001") and "*" in body["id_number"]
