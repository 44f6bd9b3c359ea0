"""The door station: scanners and NFC readers in, one decision path, a full-screen result out; online through the
cardsvc API, offline from the signed event bundle, with a durable queue that uploads when the server is back.

Modules: :mod:`~station.inputs` (scan sources), :mod:`~station.dedupe`, :mod:`~station.store` (SQLite, WAL,
``synchronous=FULL``), :mod:`~station.client` (HTTP and the online/offline state machine), :mod:`~station.loop` (the
decision path, uploader), :mod:`~station.display`, :mod:`~station.nfc_writer`, :mod:`~station.setup`
(provisioning), :mod:`~station.errors`; :mod:`~station.settings` and :mod:`~station.cli` are the ``cardsvc-station``
command around them.

The station is its own distribution (``packaging/station``): it depends on :mod:`verification` and never on
``cardsvc``, so a station laptop installs neither the server nor its dependencies.
"""
