"""The import boundaries of the pure and portable packages (STYLE.md: dependency direction).

``cardsvc`` → ``issuance``, ``verification``, ``integrations``, ``station``; ``station`` → ``verification``;
``issuance`` → ``verification``; nothing imports ``cardsvc``. Every import statement of ``verification/``,
``station/``, ``issuance/`` and ``integrations/`` is read (those inside functions too) and checked against what its
package may use; the station's distribution (packaging/station/pyproject.toml) must declare exactly the third-party
packages that ``station/`` and ``verification/`` import, so that a station installs and runs without the server.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"cardsvc", "issuance", "verification", "integrations", "station"}
# What each package may import besides the standard library: first-party packages, and third-party ones with the
# modules allowed to use them ("*": any module of the package).
ALLOWED: dict[str, tuple[set[str], dict[str, set[str]]]] = {
    "verification": ({"verification"}, {
        "cryptography": {"*"}, "cbor2": {"*"}, "jwt": {"*"},
        # PC/SC is confined to one module, imported only when a reader is opened.
        "smartcard": {"verification/readers/pcsc.py"},
    }),
    "station": ({"station", "verification"}, {
        "httpx": {"*"},
        # Optional inputs (the distribution's `readers` extra), imported by the source that needs them.
        "serial": {"station/inputs.py"}, "evdev": {"station/inputs.py"}, "smartcard": {"station/inputs.py"},
    }),
    # Both also sign JWTs (the wallets': Google's save link, the APNs and Google API tokens).
    "issuance": ({"issuance", "verification"}, {
        "cryptography": {"*"}, "cbor2": {"*"}, "qrcode": {"*"}, "PIL": {"*"}, "reportlab": {"*"}, "jwt": {"*"},
    }),
    "integrations": ({"integrations"}, {
        "httpx": {"*"}, "cryptography": {"*"}, "jwt": {"*"},
        # The development registry is a small web server of its own, like httpx's MockTransport ships with httpx.
        "fastapi": {"integrations/population/fake_server.py"}, "starlette": {"integrations/population/fake_server.py"},
        "uvicorn": {"integrations/population/fake_server.py"},
    }),
}
# Import name → distribution name, for the station's dependency list.
DISTRIBUTIONS = {"cryptography": "cryptography", "cbor2": "cbor2", "jwt": "pyjwt", "httpx": "httpx",
                 "smartcard": "pyscard", "serial": "pyserial", "evdev": "evdev"}
SERVER_ONLY = ("cardsvc", "fastapi", "sqlalchemy", "alembic", "starlette", "pydantic", "reportlab", "issuance")


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level module name → the files of ``package`` that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), relative)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(relative)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_layer_allows(package: str) -> None:
    first_party, third_party = ALLOWED[package]
    problems = []
    for name, files in _imports(package).items():
        if name in sys.stdlib_module_names or name in first_party:
            continue
        allowed = third_party.get(name, set())
        wrong = set() if "*" in allowed else files - allowed
        if wrong:
            problems.append(f"{name} imported by {', '.join(sorted(wrong))}")
    assert not problems, f"{package}/ crosses its boundary: {problems}"


def test_the_station_distribution_declares_exactly_what_the_station_imports() -> None:
    """Its dependencies (with the ``readers`` extra) are the third-party imports of ``station/`` and
    ``verification/``, and its package list is every package of both."""
    config = tomllib.loads((ROOT / "packaging/station/pyproject.toml").read_text(encoding="utf-8"))
    requirements = config["project"]["dependencies"] + config["project"]["optional-dependencies"]["readers"]
    declared = {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}
    imported = {DISTRIBUTIONS.get(name, name) for package in ("station", "verification") for name in _imports(package)
                if name not in sys.stdlib_module_names and name not in FIRST_PARTY}
    assert declared == imported
    packages = set(config["tool"]["setuptools"]["packages"])
    on_disk = {path.parent.relative_to(ROOT).as_posix().replace("/", ".")
               for package in ("station", "verification") for path in (ROOT / package).rglob("__init__.py")}
    assert packages == on_disk


def test_the_station_and_verification_load_nothing_of_the_server() -> None:
    """Importing every module of ``station/`` and ``verification/`` (the station's ``cardsvc-station --help`` too)
    loads no server package."""
    modules = sorted(path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                     for package in ("station", "verification") for path in (ROOT / package).rglob("*.py")
                     if path.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "from station.settings import parse_settings\n"
            "parse_settings(['--stdin'], {})\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r})\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
