"""Noticing that the policy directory changed: a polling watcher and the SIGHUP hook.

Owns *when* a reload is asked for, never what a reload does (that is the ``on_change`` callback, in
practice ``PolicyStore.reload``). Polling a cheap signature instead of inotify is deliberate: it needs no
third-party library, works on every filesystem and platform, and sees Kubernetes ConfigMap updates, which
arrive as an atomic swap of the ``..data`` symlink to a new timestamped directory (``x.yaml`` ->
``..data/x.yaml``) rather than as writes to ``x.yaml`` -- an inotify watch on the files would miss them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("router.policy")

Entry = tuple[str, str, int, int, int]
"""(path relative to the watched directory, resolved real path, size, mtime_ns, inode); -1s when unreadable."""
Signature = tuple[Entry, ...]


def directory_signature(directory: Path) -> Signature:
    """Every entry under ``directory``, recursively and following symlinks, with what identifies its content.

    The real path is what changes on a ConfigMap swap (``..data`` now resolves to another directory); size
    and mtime_ns catch in-place writes; the inode catches a file replaced by rename with the same size and
    a preserved mtime. Entries are sorted by name so the same tree always gives the same signature.
    """
    root = os.fspath(directory)
    entries: list[Entry] = [_entry("", root)]
    visited: set[str] = set()

    def walk(path: str, rel: str) -> None:
        real = os.path.realpath(path)
        if real in visited:  # two names for one directory (``..data``), or a symlink loop
            return
        visited.add(real)
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return  # vanished mid-scan or unreadable: its own entry already says so; the next poll settles
        for name in names:
            child, child_rel = os.path.join(path, name), os.path.join(rel, name)
            entries.append(_entry(child_rel, child))
            if os.path.isdir(child):  # follows symlinks
                walk(child, child_rel)

    walk(root, "")
    return tuple(entries)


def _entry(rel: str, path: str) -> Entry:
    real = os.path.realpath(path)
    try:
        st = os.stat(path)  # follows symlinks: the target's identity is what matters
    except OSError:
        return (rel, real, -1, -1, -1)  # dangling symlink or deleted between listing and stat
    # A directory's own size and mtime change whenever a child is added or removed, which the child
    # entries already show; leaving them out keeps the signature about content.
    if stat.S_ISDIR(st.st_mode):
        return (rel, real, 0, 0, st.st_ino)
    return (rel, real, st.st_size, st.st_mtime_ns, st.st_ino)


class DirectoryWatcher:
    """Polls ``directory_signature`` every ``interval_s`` and calls ``on_change`` once per settled change.

    Debounce: a new signature must be seen on two consecutive polls before ``on_change`` runs, because
    editors and ``kubectl cp`` write in several steps and a reload of a half-written file would be
    rejected (harmlessly, but noisily). ``on_change`` is awaited inside the poll loop, so the watcher never
    overlaps its own reloads. The scan runs on the event loop: a policy directory is a handful of small
    files, and a scan costs about 0.2 ms -- no more than a hop to a worker thread.
    """

    def __init__(
        self,
        directory: Path,
        on_change: Callable[[], Awaitable[object]],
        interval_s: float = 1.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scan: Callable[[Path], Signature] = directory_signature,
    ) -> None:
        self.directory = directory
        self.interval_s = interval_s
        self._on_change = on_change
        self._sleep = sleep
        self._scan = scan
        self._settled: Signature | None = None
        self._pending: Signature | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Take the baseline now (changes from here on are reported) and start polling. Needs a running loop."""
        if self._task is not None:
            raise RuntimeError("watcher already started")
        self._settled = self._scan(self.directory)
        self._pending = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"policy-watch {self.directory}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def poll(self) -> bool:
        """One poll step; True when it called ``on_change``. The task calls this; tests may step it directly."""
        signature = self._scan(self.directory)
        if signature == self._settled:
            self._pending = None  # changed and changed back before settling: nothing to reload
            return False
        if signature != self._pending:
            self._pending = signature  # new, or still moving: wait one more poll for it to hold still
            return False
        # Settled even if on_change fails: a rejected policy is reported by the store, and retrying the
        # same broken files every interval would only repeat the error until ops change them again.
        self._settled, self._pending = signature, None
        log.info("policy directory %s changed", self.directory)
        await self._on_change()
        return True

    async def _run(self) -> None:
        while True:
            await self._sleep(self.interval_s)
            try:
                await self.poll()
            except Exception:  # the watcher must outlive any one bad poll or callback
                log.exception("policy watcher poll failed; still watching %s", self.directory)


def install_sighup(loop: asyncio.AbstractEventLoop, callback: Callable[[], Awaitable[object]]) -> Callable[[], None]:
    """On SIGHUP, schedule ``callback()`` on ``loop``. Returns a function that removes the handler.

    A no-op (returning a no-op) where SIGHUP or loop signal handlers do not exist: Windows, and any loop
    outside the main thread (the in-process test servers run the app in a thread).
    """
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:
        return _nothing
    # Strong references until done: the loop keeps only weak ones, and a collected task would be lost.
    running: set[asyncio.Future[object]] = set()

    def finished(task: asyncio.Future[object]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIGHUP policy reload failed", exc_info=task.exception())

    def fire() -> None:
        log.info("SIGHUP: reloading policies")
        task = asyncio.ensure_future(callback(), loop=loop)
        running.add(task)
        task.add_done_callback(finished)

    previous = signal.getsignal(sighup)
    try:
        loop.add_signal_handler(sighup, fire)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.warning("SIGHUP policy reload unavailable here (%s); the watcher and admin endpoint still work", exc)
        return _nothing
    removed = False

    def remove() -> None:
        nonlocal removed
        if removed:
            return
        removed = True
        loop.remove_signal_handler(sighup)
        # remove_signal_handler resets SIGHUP to SIG_DFL (terminate); put back what was there before us.
        if previous is not None:
            try:
                signal.signal(sighup, previous)
            except (ValueError, OSError):
                pass

    return remove


def _nothing() -> None:
    pass
