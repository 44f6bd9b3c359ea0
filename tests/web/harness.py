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
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
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
    # False: no CARDSVC_PUBLIC_BASE_URL, so links and set-up QRs take the address each request came to.
    public_base_url: bool = True

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
        self.process = _spawn(self.url, self.database_url, self.log_path, self.public_base_url)
        _wait_ready(self.url, self.process, self.log_path)


def _env(database_url: str, url: str, public_base_url: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CARDSVC_DATABASE_URL": database_url, "CARDSVC_SECRET_KEY": SERVER_SECRET,
        "CARDSVC_KEY_ENCRYPTION_KEY": SERVER_KEK, "CARDSVC_ENVIRONMENT": "test", "CARDSVC_PUBLIC_BASE_URL": url,
        "CARDSVC_STATUS_LIST_SIZE": "4096",
    })
    if not public_base_url:
        env["CARDSVC_PUBLIC_BASE_URL"] = ""
    return env


def _spawn(url: str, database_url: str, log_path: Path, public_base_url: bool = True) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1]
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "cardsvc.app:create_app", "--factory", "--host", "127.0.0.1", "--port", port],
        env=_env(database_url, url, public_base_url), stdout=log, stderr=subprocess.STDOUT,
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
def live_server(tmp_dir: Path, *, public_base_url: bool = True) -> Iterator[LiveServer]:
    """A migrated SQLite database in ``tmp_dir`` and a uvicorn process serving it on a free port (with
    ``public_base_url``, configured as the server's public address)."""
    database_url = f"sqlite:///{tmp_dir / 'live.sqlite3'}"
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_dir / "server.log"
    server = LiveServer(url, database_url, _spawn(url, database_url, log_path, public_base_url), log_path,
                        public_base_url)
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


def chromium(*, fake_camera: Path | None = None, user_data_dir: Path, proxy: str | None = None,
             flags: Sequence[str] = ()) -> webdriver.Chrome:
    """Headless Chromium as the machine's probe starts it; optionally fed a looping Y4M/MJPEG as the camera, with
    ``flags`` added (e.g. ``--host-resolver-rules`` to reach the live server under a name).

    ``proxy`` (``http://127.0.0.1:PORT``, a live server) receives every request to an address other than the
    loopback: a test opens ``http://192.168.1.20:PORT/admin`` as an officer on a venue's network would, while the
    only connection made is to the local server (which reads the address from the request's Host header).
    """
    browser, driver = chromium_paths()
    options = Options()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    if proxy is not None:
        options.add_argument(f"--proxy-server={proxy}")
    for flag in flags:
        options.add_argument(flag)
    if fake_camera is not None:
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-video-capture={fake_camera.resolve()}")
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(driver: webdriver.Chrome, element_id: str) -> None:
    """Wait (10 s at most) until the page has an element with this id."""
    WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located((By.ID, element_id)))


def submit(driver: webdriver.Chrome, element_id: str, then: str, *, confirm: bool = False) -> None:
    """Press the button or link ``element_id``, which loads a new page (accepting its confirmation dialog when
    ``confirm``), and wait until that new page has an element ``then``. Waiting for ``then`` alone would return at
    once when the page being left has one too (a second "done" message, a second report), and the next step would
    act on a page that is going away."""
    # A mark on the page being left; the next page's window has none. (Selenium's staleness_of the old <html> can
    # fail mid-navigation with "Node with given id does not belong to the document" instead of going stale.)
    driver.execute_script("window.__leaving = true")
    driver.find_element(By.ID, element_id).click()
    if confirm:
        driver.switch_to.alert.accept()
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.__leaving && document.readyState !== 'loading'"))
    wait_for(driver, then)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def accessibility_violations(driver: webdriver.Chrome) -> list[dict[str, object]]:
    """Run axe-core (vendored, tests/web/vendor) on the page; its serious and critical violations, each with the
    rule, its impact and the first offending elements. Injected through WebDriver, so no page serves it."""
    driver.set_script_timeout(60)
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, object]] = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]}).then((result) => done(result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({rule: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}))))
          .catch((error) => done([{rule: "axe-error", impact: "critical", help: String(error), nodes: []}]));
    """)
    return found
