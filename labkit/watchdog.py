"""Watchers: small processes that clean up after a Python that is gone, and how they are told what to do.

Some things labkit starts would outlive the Python that started them: the
processes of a cluster (:mod:`labkit.net`) and a PostgreSQL server, which
``pg_ctl`` detaches (:mod:`labkit.txn.postgres`). ``atexit`` does not run when
a notebook kernel is killed with ``SIGKILL``, so each gets a *watcher*
process that outlives its parent on purpose and cleans up after it. Every
watcher follows one protocol:

* **start**: the parent starts the watcher and waits until it prints
  ``watching`` (:func:`start`); from then on the watcher handles the
  signals below, so nothing the parent starts next depends on a watcher
  that could still be killed by a signal it does not handle yet;
* **the parent is gone** (``getppid()`` changed): clean up, then exit;
* **SIGTERM or SIGINT** (someone stops the watcher itself, e.g. a ``pkill`` of
  a session): clean up, then exit. Exiting without cleaning up would leave
  what it guards running with no one left to stop it;
* **SIGUSR1**, from the parent (:func:`dismiss`): "I stopped it myself",
  so the watcher exits at once and touches nothing.

:func:`watch` is the watcher's side: it returns when it is time to clean up.
What cleaning up means is the caller's (kill a process group, stop a server).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["READY", "STOPPED", "start", "watch", "dismiss"]

READY = b"watching\n"  # the watcher's one line: from now on it handles the signals of the protocol
STOPPED = signal.SIGUSR1  # from the parent: "I stopped it myself", so the watcher just exits


def start(argv: Sequence[str], *, what: str, timeout: float = 30.0, **popen: Any) -> subprocess.Popen:
    """Start the watcher ``argv`` and wait (at most ``timeout`` s) until it says it is watching.

    ``what`` names the watcher in the error raised if it does not start;
    ``popen`` goes to :class:`subprocess.Popen` (e.g. ``start_new_session=True``).
    """
    quiet = subprocess.DEVNULL
    watcher = subprocess.Popen(list(argv), stdin=quiet, stdout=subprocess.PIPE, stderr=quiet, **popen)
    assert watcher.stdout is not None
    with watcher.stdout:
        ready, _, _ = select.select([watcher.stdout], [], [], timeout)
        if not ready or watcher.stdout.readline() != READY:
            watcher.kill()
            watcher.wait(5)
            raise RuntimeError(f"{what} did not start")
    return watcher


def watch(parent: int, poll: float = 0.5) -> str:
    """The watcher's side: handle the protocol's signals, say so, and wait until it is time to clean up.

    Returns why: ``"parent gone"``, or the name of the signal that told us to go.
    SIGUSR1 ends the process here and now, without returning.
    """
    told: list[int] = []
    signal.signal(STOPPED, lambda *_: os._exit(0))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: told.append(signum))
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    sys.stdout.close()
    while os.getppid() == parent and not told:
        time.sleep(poll)
    return signal.Signals(told[0]).name if told else "parent gone"


def dismiss(
    watcher: subprocess.Popen, *, timeout: float = 5.0, before_reaping: Callable[[], None] | None = None
) -> None:
    """The parent's side, once it has cleaned up itself: tell ``watcher`` to just exit (SIGUSR1).

    Waits until it has exited (``SIGKILL`` after ``timeout`` s), then calls
    ``before_reaping`` while the exited watcher still holds its process id
    (a process group it led keeps its number until then, so a ``killpg`` cannot
    reach a stranger that reused it), then reaps it. Nothing to do if it was reaped already.
    """
    if watcher.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(watcher.pid, STOPPED)  # not send_signal: it may reap the watcher before before_reaping
    if not _exited(watcher.pid, timeout):
        os.kill(watcher.pid, signal.SIGKILL)
        _exited(watcher.pid, timeout)
    if before_reaping is not None:
        before_reaping()
    watcher.wait(timeout)


def _exited(pid: int, timeout: float) -> bool:
    """Wait (at most ``timeout`` s) until our child ``pid`` has exited, without reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped already
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
