"""Fixtures of the server's tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def fresh_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The `cardsvc` command's environment on an empty SQLite file in a folder of its own (the working directory):
    returns the database URL."""
    url = f"sqlite:///{tmp_path / 'var' / 'cli.sqlite3'}"
    monkeypatch.setenv("CARDSVC_DATABASE_URL", url)
    monkeypatch.setenv("CARDSVC_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    monkeypatch.chdir(tmp_path)
    return url
