"""The pass builder is pure and the adapters stand alone: neither imports the service, its web framework or its
database layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wallet_builder_and_adapters_import_without_the_service() -> None:
    code = ("import sys, issuance.wallet, integrations.wallet\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cardsvc', 'fastapi', 'sqlalchemy', "
            "'starlette'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
