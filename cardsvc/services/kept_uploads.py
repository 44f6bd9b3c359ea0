"""Member files kept for a few minutes after an import, so that the officer can download them back with an error
column without choosing the file again.

A member file holds ID numbers and birth dates, so it is kept as briefly as the download needs: encrypted
(AES-256-GCM under a key derived from the service secret), for ``CARDSVC_IMPORT_DOWNLOAD_MINUTES``, readable only
by the officer who uploaded it, and deleted once expired (every keep and every download sweeps the directory).
The token that names it is random: it carries nothing about the file. Files live in a directory rather than in
the database so that every worker process of a server finds them; servers behind a load balancer need a shared
directory (or the CLI's ``--errors-file``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardsvc.db.base import utcnow
from cardsvc.errors import NotFound
from cardsvc.settings import Settings

__all__ = ["KeptUpload", "UploadKeeper"]

log = logging.getLogger("cardsvc.imports")

_VERSION = b"\x01"


@dataclass(frozen=True)
class KeptUpload:
    """An uploaded member file and what its import was asked to do."""

    data: bytes
    filename: str
    chapter_code: str | None
    officer_id: int | None


def _expired() -> NotFound:
    return NotFound("this download has expired or does not exist; check the file again", code="download_expired")


class UploadKeeper:
    """Keeps uploads encrypted in ``directory`` for ``minutes``; ``clock`` is injected for tests."""

    def __init__(self, directory: Path, key: bytes, minutes: int, clock: Callable[[], datetime] = utcnow) -> None:
        self._directory = directory
        self._aead = AESGCM(key)
        self._lifetime = timedelta(minutes=minutes)
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadKeeper:
        """The keeper the server and the CLI use."""
        return cls(settings.import_download_dir, settings.derived_key("import-download"),
                   settings.import_download_minutes)

    def keep(self, upload: KeptUpload) -> tuple[str, datetime] | None:
        """Store ``upload``; return the token that fetches it and when it expires.

        Returns None when the directory cannot be written: the import has happened, only the download is lost.
        """
        token = secrets.token_urlsafe(24)
        expires = self._clock() + self._lifetime
        header = json.dumps({"filename": upload.filename, "chapter_code": upload.chapter_code,
                             "officer_id": upload.officer_id}).encode()
        plaintext = len(header).to_bytes(4, "big") + header + upload.data
        nonce = os.urandom(12)
        path = self._directory / f"{int(expires.timestamp())}-{self._digest(token)}"
        try:
            self.sweep()
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(_VERSION + nonce + self._aead.encrypt(nonce, plaintext, token.encode()))
        except OSError as exc:
            log.warning("cannot keep an import upload in %s: %s", self._directory, exc.strerror)
            return None
        return token, expires

    def fetch(self, token: str, officer_id: int | None) -> KeptUpload:
        """The upload ``token`` names, if it has not expired and ``officer_id`` uploaded it.

        Raises:
            NotFound: the token is unknown, expired or another officer's (one answer for all three).
        """
        self.sweep()
        found = list(self._directory.glob(f"*-{self._digest(token)}")) if self._directory.is_dir() else []
        if not found:
            raise _expired()
        blob = found[0].read_bytes()
        try:
            plaintext = self._aead.decrypt(blob[1:13], blob[13:], token.encode())
        except (InvalidTag, ValueError) as exc:
            raise _expired() from exc
        size = int.from_bytes(plaintext[:4], "big")
        header = json.loads(plaintext[4:4 + size])
        if header["officer_id"] != officer_id:
            raise _expired()
        return KeptUpload(data=plaintext[4 + size:], filename=header["filename"],
                          chapter_code=header["chapter_code"], officer_id=officer_id)

    def sweep(self) -> None:
        """Delete every expired file."""
        if not self._directory.is_dir():
            return
        now = self._clock().timestamp()
        for path in self._directory.iterdir():
            expires, _, _ = path.name.partition("-")
            if expires.isdigit() and int(expires) < now:
                path.unlink(missing_ok=True)

    @staticmethod
    def _digest(token: str) -> str:
        # Files are named by a hash of the token, so a listing of the directory gives no usable token.
        return hashlib.sha256(token.encode()).hexdigest()
