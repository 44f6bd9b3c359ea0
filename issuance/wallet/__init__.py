"""Wallet passes that carry the signed card: Apple Wallet ``.pkpass`` files and Google Wallet save links.

Pure: the caller hands in what the printed card shows (:class:`WalletCard`), the keys and certificates; nothing
here reads a database, a file or the network. Talking to Apple's and Google's services is ``integrations.wallet``.
"""

from issuance.wallet.apple import (
    PassIdentity,
    PassSigningIdentity,
    build_pkpass,
    certificate_days_left,
    pass_images,
    pass_json,
)
from issuance.wallet.content import PassState, WalletCard, status_texts
from issuance.wallet.google import generic_class, generic_object, object_state, save_jwt, save_url

__all__ = [
    "PassIdentity",
    "PassSigningIdentity",
    "PassState",
    "WalletCard",
    "build_pkpass",
    "certificate_days_left",
    "generic_class",
    "generic_object",
    "object_state",
    "pass_images",
    "pass_json",
    "save_jwt",
    "save_url",
    "status_texts",
]
