"""The provisioning QR shown when a station is registered, as inline SVG.

``issuance.render.qr_svg`` encodes digits only (card credentials); a provisioning URL is text, so this uses the
``qrcode`` package's path factory in byte mode. Inline SVG needs no ``img-src`` exception in the page policy.
"""

from __future__ import annotations

import re
from html import escape

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathFillImage

_SIZE_ATTRIBUTES = re.compile(r'^(<svg[^>]*?) width="[^"]*" height="[^"]*"')


def text_qr_svg(text: str, label: str) -> str:
    """An SVG QR symbol (byte mode, ECC M, 4-module quiet zone) that scales with its container; ``label`` names it
    for screen readers."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, image_factory=SvgPathFillImage)
    code.add_data(text.encode(), optimize=0)
    code.make(fit=True)
    svg: str = code.make_image().to_string(encoding="unicode")
    # Fixed millimetre sizes would defeat the page's CSS; the viewBox keeps the proportions.
    return _SIZE_ATTRIBUTES.sub(lambda match: f'{match.group(1)} role="img" aria-label="{escape(label)}"', svg, count=1)
