"""Browser-test harness: a real server (uvicorn subprocess) on its own database, and headless Chromium.

The server runs committed data (the per-test rollback cannot reach another process), so each test module seeds what
it needs through the services on :meth:`LiveServer.session`. Screenshots go to ``var/test-artifacts/`` (kept as CI
artefacts).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.session import make_engine, make_session_factory

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
SERVER_SECRET = "browser-test-secret-0123456789-abcdefghijklmnop"
SERVER_KEK = "browser-test-kek-0123456789-abcdefghijklmnopqrs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def session(self) -> Session:
        return make_session_factory(make_engine(self.database_url))()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def start(self) -> None:
        """(Re)start the server process on the same port and database (for offline/online tests)."""
        self.process = _spawn(self.url, self.database_url, self.log_path)
        _wait_ready(self.url, self.process, self.log_path)


def _env(database_url: str, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CARDSVC_DATABASE_URL": database_url, "CARDSVC_SECRET_KEY": SERVER_SECRET,
        "CARDSVC_KEY_ENCRYPTION_KEY": SERVER_KEK, "CARDSVC_ENVIRONMENT": "test", "CARDSVC_PUBLIC_BASE_URL": url,
        "CARDSVC_STATUS_LIST_SIZE": "4096",
    })
    return env


def _spawn(url: str, database_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1]
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "cardsvc.app:create_app", "--factory", "--host", "127.0.0.1", "--port", port],
        env=_env(database_url, url), stdout=log, stderr=subprocess.STDOUT,
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")


@contextmanager
def live_server(tmp_dir: Path) -> Iterator[LiveServer]:
    """A migrated SQLite database in ``tmp_dir`` and a uvicorn process serving it on a free port."""
    database_url = f"sqlite:///{tmp_dir / 'live.sqlite3'}"
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_dir / "server.log"
    server = LiveServer(url, database_url, _spawn(url, database_url, log_path), log_path)
    try:
        _wait_ready(url, server.process, log_path)
        yield server
    finally:
        server.stop()


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        # `make test` installs them: a missing browser is a broken set-up, never a reason to skip.
        pytest.fail("Debian's chromium and chromium-driver are needed (make test installs them)")
    return browser, driver


def chromium(*, fake_camera: Path | None = None, user_data_dir: Path, flags: Sequence[str] = ()) -> webdriver.Chrome:
    """Headless Chromium as the machine's probe starts it; optionally fed a looping Y4M/MJPEG as the camera, with
    ``flags`` added (e.g. ``--host-resolver-rules`` to reach the live server under a name)."""
    browser, driver = chromium_paths()
    options = Options()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    for flag in flags:
        options.add_argument(flag)
    if fake_camera is not None:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-video-capture={fake_camera.resolve()}")
    return webdriver.Chrome(service=Service(driver), options=options)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
