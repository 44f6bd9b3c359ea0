"""The one error for input that a rule refuses: an ID number, a name, a phone number, a date, a member list file.

``code`` is stable (clients and the import report key on it); the messages are for people, in English and
Vietnamese. It lives here, in the pure ``integrations`` layer, so that ``integrations`` (ID numbers) and ``cardsvc``
(normalisation, the import readers) raise the same class; the server maps it to a 4xx (``ValidationFailed`` with the
code and both messages), never a 500.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """A value or file that cannot be accepted; ``code`` is stable, the messages are for people."""

    def __init__(self, code: str, message_en: str, message_vi: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_en = message_en
        self.message_vi = message_vi

    def __str__(self) -> str:
        return self.message_en
