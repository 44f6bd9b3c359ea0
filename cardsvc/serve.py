"""``cardsvc serve``: uvicorn worker processes that each listen on their own ``SO_REUSEPORT`` socket.

uvicorn's own ``--workers`` shares one listening socket between the workers, and an idle worker accepts a whole burst
of connections at once: with the 32 keep-alive connections of ``bench/checkin_load.py`` one worker held 22 and the
other 10, so the requests on the first waited more than twice as long (the p99 was the busy worker's queue). Each
worker here binds its own socket to the same address with ``SO_REUSEPORT``, and the kernel spreads new connections
over them by a hash of the client's address and port. The parent only supervises: it restarts a worker that dies
and stops them all on SIGTERM or SIGINT. One worker, or a system without ``SO_REUSEPORT``, runs plain uvicorn.
uvicorn's own access log is off: the service writes one JSON access line per request itself (cardsvc.access).

Stopping is bounded whatever is in flight: requests get ``grace`` seconds (``CARDSVC_SHUTDOWN_GRACE_SECONDS``,
uvicorn's graceful-shutdown timeout), background jobs are told to stop (cardsvc/app.py), and a worker that has not
exited ``STOP_MARGIN_SECONDS`` after that is killed.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from cardsvc.tls import TlsFiles

APP = "cardsvc.app:server_app"
BACKLOG = 2048
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# A worker that exits by itself with an error this soon after it started failed to start (port taken, bad settings):
# restarting it would only loop, so the server stops with an error instead. One killed by a signal is restarted.
START_GRACE_SECONDS = 10.0
# After the requests' grace period: time for the application's shutdown (jobs wind down for up to 3 s) and the exit.
STOP_MARGIN_SECONDS = 10.0

log = logging.getLogger("cardsvc.serve")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _die_with_parent() -> None:
    """Linux: have the kernel send this worker SIGTERM when the supervisor dies, even by SIGKILL (no orphan keeps
    serving on the port)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor still stops its workers on SIGTERM and SIGINT
        pass


def _tls_files(tls: TlsFiles | None) -> tuple[str | None, str | None]:
    return (str(tls.certificate), str(tls.key)) if tls else (None, None)


def _worker(host: str, port: int, parent: int, grace: int, tls: TlsFiles | None = None) -> None:
    import uvicorn

    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the line above took effect
        return
    sock = _listen(host, port)
    certificate, key = _tls_files(tls)
    config = uvicorn.Config(APP, factory=True, host=host, port=port, backlog=BACKLOG, access_log=False,
                            timeout_graceful_shutdown=grace, ssl_certfile=certificate, ssl_keyfile=key)
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, grace: int, tls: TlsFiles | None = None) -> int:
    """Serve until SIGTERM or SIGINT, giving requests in flight ``grace`` seconds (HTTPS with ``tls``: ``cardsvc
    serve --tls``); returns the exit status."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        import uvicorn

        certificate, key = _tls_files(tls)
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, access_log=False,
                    timeout_graceful_shutdown=grace, ssl_certfile=certificate, ssl_keyfile=key)
        return 0
    # Bind once here first, without SO_REUSEPORT: a port that anything listens on (another cardsvc serve included,
    # which the workers' sockets would otherwise silently join) fails now, with a clear message.
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        print(f"cardsvc serve: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(host, port, os.getpid(), grace, tls), name="cardsvc-worker")
        process.start()
        return process, time.monotonic()

    running = [start() for _ in range(workers)]
    status = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                if (process.exitcode or 0) > 0 and time.monotonic() - started < START_GRACE_SECONDS:
                    log.error("worker %s exited during start-up (exit code %s): stopping", process.pid,
                              process.exitcode)
                    stopping, status = True, 1
                    break
                log.warning("worker %s exited (exit code %s): starting another", process.pid, process.exitcode)
                running[index] = start()
    finally:
        for process, _ in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits.
        deadline = time.monotonic() + grace + STOP_MARGIN_SECONDS
        for process, _ in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
