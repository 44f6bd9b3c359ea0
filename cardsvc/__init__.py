"""cardsvc: smart member cards and identity for a national women's union."""

__version__ = "0.1.0"
