"""`cardsvc nfc write` and `cardsvc nfc read` against the real PC/SC stack with a virtual NTAG215."""

from collections.abc import Callable
from pathlib import Path

import pytest

from cardsvc.cli import main
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.services import cards
from cardsvc.services.context import system_actor
from cardsvc.settings import Settings
from tests.readers.virtual_ntag import VirtualNtag, VpcdSlot


@pytest.fixture
def demo_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CARDSVC_DATABASE_URL", f"sqlite:///{tmp_path / 'nfc.sqlite3'}")
    monkeypatch.setenv("CARDSVC_SECRET_KEY", "nfc-cli-test-secret-0123456789-abcdefghij")
    monkeypatch.setenv("CARDSVC_KEY_ENCRYPTION_KEY", "nfc-cli-test-kek-0123456789-abcdefghijklm")
    monkeypatch.chdir(tmp_path)
    assert main(["migrate"]) == 0
    assert main(["demo", "--var-dir", str(tmp_path / "var")]) == 0
    settings = Settings()
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        from sqlalchemy import select

        from cardsvc.db.models import Member
        from cardsvc.services.keys import KeyRing

        member_id = session.scalars(select(Member.id).order_by(Member.id)).first()
        assert member_id is not None
        card = cards.issue_card(session, system_actor("test"), KeyRing(settings.kek), member_id, validity_years=5,
                                list_size=4096)
        card_id = card.card_id
    engine.dispose()
    return card_id


def test_write_then_read_through_the_cli(demo_card: str, slot: VpcdSlot,
                                         tag_on_reader: Callable[[str], VirtualNtag],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    tag_on_reader("ntag215")
    capsys.readouterr()
    assert main(["nfc", "write", "--card", demo_card, "--reader", slot.name, "--wait", "5"]) == 0
    written = capsys.readouterr().out
    assert "read back and verified" in written and "VALID" in written
    assert main(["nfc", "read", "--reader", slot.name, "--wait", "5"]) == 0
    read = capsys.readouterr().out
    assert int(read.split(" in ")[1].split(" APDUs")[0]) <= 12
    assert "VALID" in read


def test_read_of_a_revoked_card_is_refused(demo_card: str, slot: VpcdSlot,
                                           tag_on_reader: Callable[[str], VirtualNtag],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tag_on_reader("ntag216")
    assert main(["nfc", "write", "--card", demo_card, "--reader", slot.name, "--wait", "5"]) == 0
    settings = Settings()
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        cards.revoke_card(session, system_actor("test"), demo_card, reason="lost", note=None)
    engine.dispose()
    capsys.readouterr()
    assert main(["nfc", "read", "--reader", slot.name, "--wait", "5"]) == 1
    assert "REFUSED: revoked" in capsys.readouterr().out


def test_a_blank_tag_is_a_clear_error(demo_card: str, slot: VpcdSlot, tag_on_reader: Callable[[str], VirtualNtag],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    tag_on_reader("ntag215")
    assert main(["nfc", "read", "--reader", slot.name, "--wait", "5"]) == 2
    assert "error:" in capsys.readouterr().err
