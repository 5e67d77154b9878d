"""``router serve --workers N``: N worker processes serving one port, sharing state through Redis.

Owns the supervisor: it starts the workers (``spawn``, so each builds its own app, event loop and
connection pools from the settings), forwards SIGTERM/SIGINT to them once, waits for every worker to
drain, and cleans up. Each worker binds the port itself with ``SO_REUSEPORT``, so the kernel spreads new
connections across them; no socket is shared and no process sits in the request path.

Metrics: the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts,
so prometheus-client runs in multiprocess mode and every worker's ``/metrics`` is the sum over workers
(``router.observability.metrics``); dead workers' live gauges are dropped when they exit.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

import msgspec

from router.settings import Settings

log = logging.getLogger("router")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _drain_when_orphaned(supervisor: int) -> None:
    """Linux: SIGTERM (a drain) to this worker when the supervisor dies -- killed with SIGKILL it cannot
    forward anything, and workers in their own session would otherwise keep serving with no one to stop
    them. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("worker: prctl(PR_SET_PDEATHSIG) failed (errno %d): not stopped with a killed supervisor",
                    ctypes.get_errno())
    elif os.getppid() != supervisor:  # it died before the call: nothing will signal this worker
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(settings: Settings, index: int, supervisor: int) -> None:
    # Its own session: a terminal's Ctrl-C reaches the supervisor only, which forwards it once (a second
    # signal would make uvicorn skip the drain).
    os.setsid()
    _drain_when_orphaned(supervisor)
    from router.observability.logs import configure_logging
    from router.server.serving import RouterServer

    configure_logging(settings.log_level, settings.log_format)
    # Every worker serves both listeners on shared ports (SO_REUSEPORT): whichever answers /metrics reads
    # every worker's multiprocess files, so the scrape is the pod's sum.
    client = _bind(settings.host, settings.port)
    admin = _bind(settings.admin_host, settings.admin_port) if settings.admin_port is not None else None
    RouterServer(settings).run(client_sockets=[client], admin_socket=admin)


def run_workers(settings: Settings) -> int:
    if settings.admin_port == 0:  # "a free port": one for all workers, chosen here
        probe = _bind(settings.admin_host, 0)
        settings = msgspec.structs.replace(settings, admin_port=probe.getsockname()[1])
        probe.close()
    metrics_dir = tempfile.mkdtemp(prefix="router-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus-client when a worker imports it
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings, i, os.getpid()), name=f"router-worker-{i}")
        for i in range(settings.workers)
    ]
    forwarded: set[int] = set()

    def forward(signum: int, _: Any) -> None:
        if signum in forwarded:
            return
        forwarded.add(signum)
        log.warning("signal %d: draining %d workers", signum, len(workers))
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        for worker in workers:
            worker.start()
        log.warning("serving on %s:%d with %d workers (shared state on Redis)", settings.host, settings.port, len(workers))
        for worker in workers:
            worker.join()
    finally:
        from prometheus_client import multiprocess

        for worker in workers:
            if worker.pid is not None:
                multiprocess.mark_process_dead(worker.pid, metrics_dir)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    # uvicorn re-raises the signal it drained on once it is done, so a drained worker ends "killed by SIGTERM".
    clean = {0, -signal.SIGTERM, -signal.SIGINT} if forwarded else {0}
    return 0 if all(worker.exitcode in clean for worker in workers) else 1
