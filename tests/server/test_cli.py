"""The `cardsvc` command on a fresh SQLite database: migrate, demo (twice), create-officer, and the README path."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cardsvc.cli import main
from cardsvc.db.models import Chapter, Member, Officer
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.demo import MEMBER_COUNT
from cardsvc.services.context import subtree_condition
from tests.conftest import NAME_TOO_LONG_FOR_CARD


def _counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        counts = (
            session.scalar(select(func.count()).select_from(Chapter)) or 0,
            session.scalar(select(func.count()).select_from(Member)) or 0,
            session.scalar(select(func.count()).select_from(Officer)) or 0,
        )
    engine.dispose()
    return counts


def test_migrate_and_demo_are_idempotent(fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    assert main(["demo", "--var-dir", str(tmp_path / "var")]) == 0
    first = capsys.readouterr().out
    assert "demo data loaded" in first
    assert "username: admin" in first
    counts = _counts(fresh_db)
    assert counts[1] == MEMBER_COUNT
    assert counts[0] >= 1 + 2 + 6 + 12  # central, provinces, communes, branches
    assert main(["demo", "--var-dir", str(tmp_path / "var")]) == 0
    second = capsys.readouterr().out
    assert "already present" in second
    assert _counts(fresh_db) == counts
    # The same login is printed both times, and it works.
    password_line = next(line for line in first.splitlines() if "username: admin" in line)
    assert password_line in second
    assert (tmp_path / "var" / "demo-logins.txt").stat().st_mode & 0o777 == 0o600


def test_demo_names_are_realistic_and_unique_ids(fresh_db: str, tmp_path: Path) -> None:
    main(["migrate"])
    main(["demo", "--var-dir", str(tmp_path / "var")])
    engine = make_engine(fresh_db)
    with make_session_factory(engine)() as session:
        names = list(session.scalars(select(Member.full_name)))
        indexes = list(session.scalars(select(Member.id_number_index)))
    engine.dispose()
    assert all(len(n.split()) >= 3 for n in names)
    assert any("ễ" in n or "ị" in n for n in names)
    assert len(set(indexes)) == len(indexes) == MEMBER_COUNT


def test_create_officer_reads_the_password_from_stdin(fresh_db: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    main(["migrate"])
    main(["demo", "--var-dir", str(tmp_path / "var")])
    monkeypatch.setattr("sys.stdin", io.StringIO("a very long password\n"))
    assert main(["create-officer", "--username", "lan", "--role", "officer", "--chapter", "HNI",
                 "--password-stdin"]) == 0
    assert "created officer lan" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a very long password\n"))
    assert main(["create-officer", "--username", "lan", "--role", "officer", "--chapter", "HNI",
                 "--password-stdin"]) == 2
    assert "username is taken" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a very long password\n"))
    assert main(["create-officer", "--username", "x.y", "--role", "officer", "--chapter", "NOPE",
                 "--password-stdin"]) == 2
    assert "no chapter with code NOPE" in capsys.readouterr().err


def test_production_without_secret_is_a_clear_error(fresh_db: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CARDSVC_ENVIRONMENT", "production")
    assert main(["migrate"]) == 2
    assert "CARDSVC_SECRET_KEY_FILE" in capsys.readouterr().err


def test_init_secret_refuses_to_overwrite(tmp_path: Path, fresh_db: str) -> None:
    target = tmp_path / "prod.key"
    assert main(["init-secret", "--file", str(target)]) == 0
    content = target.read_bytes()
    assert main(["init-secret", "--file", str(target)]) == 2
    assert target.read_bytes() == content


def test_keys_and_batch_issue_from_the_cli(fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["migrate"])
    main(["demo", "--var-dir", str(tmp_path / "var")])  # creates the trust and card keys
    capsys.readouterr()
    assert main(["keys", "create", "--purpose", "card"]) == 2
    assert "rotate it instead" in capsys.readouterr().err
    assert main(["keys", "rotate", "--alg", "es256"]) == 0
    rotated = capsys.readouterr().out
    assert "ES256" in rotated and "retired" in rotated
    pdf = tmp_path / "sheets.pdf"
    assert main(["issue", "--chapter", "HNI-BADINH", "--subtree", "--pdf", str(pdf)]) == 0
    out, err = capsys.readouterr()
    issued = int(out.split("issued ")[1].split(" cards")[0])
    assert issued > 0
    assert f"{issued}/{issued} cards" in err  # the progress bar
    assert pdf.read_bytes().startswith(b"%PDF")
    assert main(["issue", "--chapter", "HNI-BADINH", "--subtree"]) == 0
    assert "issued 0 cards" in capsys.readouterr().out  # idempotent
    main(["keys", "list"])
    listing = capsys.readouterr().out.splitlines()
    active_card = next(line.split()[0] for line in listing if " card " in line and " active " in line)
    assert main(["keys", "retire", active_card, "--compromised"]) == 0
    retired = capsys.readouterr().out
    assert f"{issued} cards revoked" in retired
    assert main(["issue", "--chapter", "HNI-BADINH", "--subtree"]) == 1  # no active card key now
    assert "no active card signing key" in capsys.readouterr().err


def test_batch_issue_lists_the_members_without_a_card_and_exits_1(fresh_db: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    main(["migrate"])
    main(["demo", "--var-dir", str(tmp_path / "var")])
    capsys.readouterr()
    engine = make_engine(fresh_db)
    with make_session_factory(engine)() as session:
        chapter = session.scalars(select(Chapter).where(Chapter.code == "HNI-BADINH")).one()
        member = session.scalars(select(Member).join(Member.chapter).where(
            subtree_condition(Chapter.path, chapter.path), Member.status == "active").order_by(Member.id)).first()
        assert member is not None
        # Stored before the byte budget was checked where names enter.
        member.full_name = NAME_TOO_LONG_FOR_CARD
        session.commit()
        number = member.member_number
    engine.dispose()
    assert main(["issue", "--chapter", "HNI-BADINH", "--subtree"]) == 1
    out, err = capsys.readouterr()
    assert int(out.split("issued ")[1].split(" cards")[0]) > 0
    assert "1 hội viên chưa được cấp thẻ / 1 members got no card:" in err
    failure = next(line for line in err.splitlines() if line.startswith(f"  {number}: "))
    assert "Họ tên quá dài để ghi lên thẻ" in failure and "The name is too long for the card" in failure
    assert "Traceback" not in out + err


def test_cardsvc_station_is_the_station_command_without_the_server(tmp_path: Path) -> None:
    """`cardsvc station` hands over to the station's own command: the server's settings are not read (a production
    environment without its secret is no obstacle) and its database layer is not even imported."""
    code = ("import sys\n"
            "from cardsvc.cli import main\n"
            f"status = main(['station', '--drain', '--db', {str(tmp_path / 'station.sqlite3')!r}])\n"
            "loaded = sorted(m for m in ('sqlalchemy', 'fastapi', 'cardsvc.db', 'cardsvc.logs') if m in sys.modules)\n"
            "print(status, loaded)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                          env={**os.environ, "CARDSVC_ENVIRONMENT": "production", "CARDSVC_SECRET_KEY": "",
                               "CARDSVC_SECRET_KEY_FILE": ""})
    assert done.stdout.splitlines() == ["2 []"]
    assert "this station is not set up: run `cardsvc-station --setup" in done.stderr
