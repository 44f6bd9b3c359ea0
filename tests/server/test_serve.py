"""``cardsvc serve --workers N``: worker processes on their own SO_REUSEPORT sockets under a small supervisor
(cardsvc/serve.py). It answers, spreads connections over the workers, replaces a worker that dies and leaves no
process behind when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEK, TEST_SECRET
from tests.web.harness import free_port

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _workers(pid: int) -> set[int]:
    """The supervisor's worker processes (spawn also starts a resource tracker, which serves nothing)."""
    return {child for child in _children(pid)
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()}


def _wait_for(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**os.environ, "CARDSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
           "CARDSVC_SECRET_KEY": TEST_SECRET, "CARDSVC_KEY_ENCRYPTION_KEY": TEST_KEK, "CARDSVC_ENVIRONMENT": "test"}
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cardsvc.cli", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--workers", "2"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(base) and len(_workers(process.pid)) == 2, "two workers answering")
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_workers_share_the_port_and_the_connections(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, base = server
    assert len(_workers(process.pid)) == 2
    # Fresh connections reach both: the kernel hashes them over the two sockets.
    served = set()
    for _ in range(64):
        with httpx.Client() as client:  # a new connection each time
            served.add(client.get(f"{base}/healthz", headers={"Connection": "close"}).headers["x-request-id"][:8])
    assert len(served) == 2, served  # request ids start with a per-process prefix


def test_a_dead_worker_is_replaced_and_sigterm_stops_everything(server: tuple[subprocess.Popen[bytes], str]
                                                                 ) -> None:
    process, base = server
    first = _workers(process.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_workers(process.pid)) == 2 and victim not in _workers(process.pid),
              "a replacement worker")
    _wait_for(lambda: _answers(base), "the server to answer")
    workers = _workers(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_workers_stop_when_the_supervisor_is_killed(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _base = server
    workers = _workers(process.pid)
    process.kill()  # SIGKILL: no handler runs; the kernel tells the workers (PR_SET_PDEATHSIG)
    process.wait(10)
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "the workers to exit")


def test_a_port_in_use_is_a_clear_error(server: tuple[subprocess.Popen[bytes], str], tmp_path: Path) -> None:
    _process, base = server
    port = base.rsplit(":", 1)[1]
    second = subprocess.run([sys.executable, "-m", "cardsvc.cli", "serve", "--host", "127.0.0.1", "--port", port,
                             "--workers", "2"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CARDSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'other.sqlite3'}",
                                 "CARDSVC_SECRET_KEY": TEST_SECRET, "CARDSVC_KEY_ENCRYPTION_KEY": TEST_KEK,
                                 "CARDSVC_ENVIRONMENT": "test"})
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
