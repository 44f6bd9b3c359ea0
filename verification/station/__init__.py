"""The door station: scanners and NFC readers in, one decision path, a full-screen result out; online through the
cardsvc API, offline from the signed event bundle, with a durable queue that uploads when the server is back.

Modules: :mod:`~verification.station.inputs` (scan sources), :mod:`~verification.station.dedupe`,
:mod:`~verification.station.store` (SQLite, WAL, ``synchronous=FULL``), :mod:`~verification.station.client`
(HTTP and the online/offline state machine), :mod:`~verification.station.loop` (the decision path, uploader),
:mod:`~verification.station.display`, :mod:`~verification.station.errors`. ``cardsvc station`` (cardsvc/station_cli.py)
is the command around them; nothing here imports ``cardsvc``.
"""
