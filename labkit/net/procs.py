"""Processes and ports: start children that never outlive us, find free loopback ports.

Every process a cluster starts (our nodes, etcd members, the reaper) goes into
one process group, so stopping the cluster is one ``killpg``. Two guards make
sure no child outlives the process that started it, even when that process
is killed with ``SIGKILL`` (a notebook kernel restarted or killed):

* each child asks Linux to send it ``SIGKILL`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, called through :mod:`ctypes`), and checks that
  its parent is still the one it expected (the parent may have died before);
* a *reaper* process in the same group polls ``getppid()`` twice a second and
  kills the whole group once its parent is gone (and removes the cluster's
  temporary folder) (this also covers a platform
  without ``prctl`` and children, like etcd, that cannot call it themselves:
  those are started through :func:`guard_main`, which calls ``prctl`` and then
  replaces itself with the real program, keeping the setting).
  The reaper is a watcher of :mod:`labkit.watchdog`: it also kills the group
  when it is itself told to go (``SIGTERM``, ``SIGINT``: a ``pkill`` of the
  session must not leave the servers running with no one to stop them), and
  it just exits on the controller's ``SIGUSR1`` (the cluster closed cleanly).

Ports: :func:`free_port` asks the kernel for a free port on 127.0.0.1;
:func:`hold_port` keeps one for a server from a cluster's start to its close,
so a server restarted after a crash comes back on the port the others know.
Everything binds the loopback address only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from labkit import watchdog

__all__ = [
    "LOOPBACK",
    "free_port",
    "hold_port",
    "port_is_free",
    "set_parent_death_signal",
    "spawn",
    "start_reaper",
    "alive",
    "guard_main",
    "reaper_main",
]

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def hold_port(share: int = socket.SO_REUSEPORT) -> socket.socket:
    """A socket that holds a free loopback port (picked by the kernel) without listening on it.

    While it is open, the kernel does not hand the port out (to an outgoing
    connection, or to a ``bind`` to port 0 as :func:`free_port` does), and only
    sockets that set ``share`` too can bind it, as the server meant to listen
    there does: ``socket.SO_REUSEPORT`` (our nodes), or ``socket.SO_REUSEADDR``
    for a program like etcd that sets only that.
    Connections go only to listening sockets, so the keeper never takes one.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, share, 1)
        sock.bind((LOOPBACK, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def port_is_free(port: int) -> bool:
    """Whether something could bind ``port`` on 127.0.0.1 now (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def set_parent_death_signal(expected_parent: int | None = None) -> bool:
    """Ask for SIGKILL when our parent dies; exit at once if it already has.

    Returns False where ``prctl`` is not available (then only the reaper guards us).
    """
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(3)  # our parent died before prctl took effect
    return ok


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def spawn(
    argv: Sequence[str],
    *,
    group: int | None,
    log: str | os.PathLike | None = None,
    pass_fds: Sequence[int] = (),
    guard: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in process group ``group`` (None: a new group led by this child).

    ``guard``: start it through :func:`guard_main` (for programs that cannot
    set the parent-death signal themselves). Output goes to ``log`` (appended).
    """
    if guard:
        argv = [sys.executable, "-m", "labkit.net.procs", "guard", str(os.getpid()), *argv]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0 if group is None else group,
            pass_fds=tuple(pass_fds),
            close_fds=True,
            env=env,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def start_reaper(group: int | None = None, folder: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start the reaper (see the module docstring); it leads a new group unless ``group`` is given.

    ``folder``: a temporary folder the reaper removes after killing the group.
    Returns once the reaper handles signals (:func:`labkit.watchdog.start`).
    """
    argv = [sys.executable, "-m", "labkit.net.procs", "reaper", str(os.getpid())]
    if folder is not None:
        argv.append(str(folder))
    what = "the reaper that stops the cluster's processes if this Python dies"
    return watchdog.start(argv, what=what, process_group=0 if group is None else group)


def reaper_main(parent: int, folder: str | None = None, poll: float = 0.5) -> None:
    """Wait until ``parent`` is gone or we are told to go (SIGTERM, SIGINT), then kill the rest of our
    process group and remove ``folder``. SIGUSR1 (the cluster closed cleanly) ends us at once."""
    # No parent-death signal here: the reaper must outlive its parent to clean up after it.
    watchdog.watch(parent, poll)
    me, group = os.getpid(), os.getpgid(0)
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit() and int(name) != me:
            with contextlib.suppress(OSError):
                if os.getpgid(int(name)) == group:
                    os.kill(int(name), signal.SIGKILL)
    if folder:
        time.sleep(0.2)  # let the killed processes let go of their files
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # anything /proc did not show; ourselves last


def guard_main(parent: int, argv: Sequence[str]) -> None:
    """Set the parent-death signal, then become ``argv`` (the setting survives ``exec``)."""
    set_parent_death_signal(parent)
    os.execv(argv[0], list(argv))


if __name__ == "__main__":  # pragma: no cover - runs in child processes
    what = sys.argv[1]
    if what == "reaper":
        reaper_main(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif what == "guard":
        guard_main(int(sys.argv[2]), sys.argv[3:])
    else:
        raise SystemExit(f"usage: python -m labkit.net.procs reaper|guard PARENT_PID [ARGV...], got {what!r}")
