"""Door-station failures, translated at the edge from httpx, pyserial and evdev.

::

    StationError                  base: something the person running the station can act on (``str()`` says what)
    ├── ScannerError              a scanner could not be opened or stopped answering (serial port, input device)
    ├── SetupError                the provisioning text is not a set-up URL or code, or provisioning failed
    ├── NotProvisionedError       the station's database holds no device token yet (run ``--setup`` first)
    └── ServerError               the server did not give a usable answer
        ├── ServerUnavailable     network error, timeout or 5xx: retry later, decide offline meanwhile
        └── ServerRefused         a definitive 4xx (``.status``, ``.code``): retrying the same request cannot help

NFC reader and tag failures stay :mod:`verification.readers.errors`; a tag's content is
:class:`verification.ndef.NdefError`.
"""

from __future__ import annotations


class StationError(Exception):
    """Base of every station failure."""


class ScannerError(StationError):
    """A scanner could not be opened, or it failed while reading."""


class SetupError(StationError):
    """Provisioning failed: a malformed set-up text, or the server refused the code."""


class NotProvisionedError(StationError):
    """The station has no device token yet."""


class ServerError(StationError):
    """The server did not give a usable answer."""


class ServerUnavailable(ServerError):
    """The server is unreachable, too slow, or failing (5xx): the request may be retried unchanged."""


class ServerRefused(ServerError):
    """The server gave a definitive refusal (4xx).

    Attributes:
        status: The HTTP status.
        code: The service's stable error code (``nonce_reused``, ``invalid_provisioning_code``…), or ``http_<status>``
            when the body carried none.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
