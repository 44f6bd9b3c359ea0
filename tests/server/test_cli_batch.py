"""``cardsvc issue``: the progress display (a bar on a terminal, a log line every few seconds otherwise), joining a
job with ``--job``, and the A4 sheets of a province written as a stream (a ZIP of one PDF per chapter)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from cardsvc.cli import BatchProgress, main
from cardsvc.db.models import Job
from cardsvc.db.session import make_engine, make_session_factory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_off_a_terminal_is_a_log_line_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    progress = BatchProgress(out, interactive=False, every=5.0, clock=clock)
    for done in (1000, 2000, 3000, 4000):
        clock.now += 1.0
        progress(done, 10_000)
    assert out.getvalue() == ""  # 4 seconds: nothing yet
    clock.now += 1.0
    progress(5000, 10_000)
    lines = out.getvalue().splitlines()
    assert lines == ["đang cấp thẻ / issuing: 5000/10000 cards, 1,000 cards/s, còn / left 0:00:05"]
    clock.now += 1.0
    progress(10_000, 10_000)  # the end is always shown
    progress.finish()
    assert out.getvalue().splitlines()[1:] == [
        "đang cấp thẻ / issuing: 10000/10000 cards, 1,667 cards/s, còn / left 0:00:00"]
    assert "\r" not in out.getvalue()


def test_progress_on_a_terminal_is_a_bar_with_rate_and_time_left() -> None:
    out, clock = io.StringIO(), Clock()
    progress = BatchProgress(out, interactive=True, clock=clock, start_at=2000)
    clock.now += 2.0
    progress(4000, 10_000)
    shown = out.getvalue()
    assert shown.startswith("\r[############..................] 4000/10000 cards  1,000 thẻ/s  còn 0:00:06")
    assert not shown.endswith("\n")
    clock.now += 6.0
    progress(10_000, 10_000)
    assert out.getvalue().endswith("\n")


def test_issue_logs_progress_joins_a_job_and_streams_the_sheets(
        fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["migrate"])
    main(["demo", "--var-dir", str(tmp_path / "var")])
    capsys.readouterr()
    sheets = tmp_path / "province.zip"
    assert main(["issue", "--chapter", "HNI-BADINH", "--subtree", "--pdf", str(sheets)]) == 0
    out, err = capsys.readouterr()
    issued = int(out.split("issued ")[1].split(" cards")[0])
    assert issued > 0
    # Captured output is no terminal: log lines, no carriage returns.
    assert f"đang cấp thẻ / issuing: {issued}/{issued} cards" in err and "\r" not in err
    with zipfile.ZipFile(sheets) as archive:
        names = archive.namelist()
        assert names and all(name.endswith(".pdf") for name in names)
        assert all(archive.read(name).startswith(b"%PDF") for name in names)
    engine = make_engine(fresh_db)
    with make_session_factory(engine)() as session:
        job_id = session.scalars(select(Job.id).order_by(Job.id.desc())).first()
    engine.dispose()
    assert main(["issue", "--job", str(job_id)]) == 0  # another worker joining a finished job: nothing to do
    assert f"issued {issued} cards (job {job_id})" in capsys.readouterr().out
    assert main(["issue", "--job", "999999"]) == 2
    assert "job not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["issue", "--job", "1", "--chapter", "HNI-BADINH"])  # one or the other
