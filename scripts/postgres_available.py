"""Exit 0 when the test PostgreSQL answers, 1 when it does not; under CI=true an absent PostgreSQL is an error (2).

The address comes from CARDSVC_TEST_DATABASE_URL, or is 127.0.0.1:5432 (the machine's own server).
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit


def main() -> int:
    url = os.environ.get("CARDSVC_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    try:
        with socket.create_connection((host, port), timeout=3):
            return 0
    except OSError as exc:
        if os.environ.get("CI", "").lower() == "true" or "CARDSVC_TEST_DATABASE_URL" in os.environ:
            print(f"PostgreSQL at {host}:{port} is required but unreachable: {exc}", file=sys.stderr)
            return 2
        return 1


if __name__ == "__main__":
    sys.exit(main())
