"""A throwaway PostgreSQL server for experiments: started from Python, gone afterwards.

:class:`TempPostgres` runs ``initdb`` in a fresh temporary folder and starts
the server with ``pg_ctl`` on a unix socket in that folder (no TCP port is
opened, so nothing outside this machine can reach it, and two servers never
clash). ``stop()`` (or leaving the ``with`` block, or the interpreter
exiting) stops the server and deletes the folder::

    with TempPostgres() as pg:
        with pg.connect() as conn:
            conn.execute("SELECT 1")

``initdb`` refuses to run as root. As root, the server's programs run as a
dedicated unprivileged user instead: ``$LABKIT_PG_USER`` if set, else
``postgres`` (the user Debian's ``postgresql`` package creates); the
temporary folder is handed to that user. The server is configured for
experiments, not for keeping data: no fsync, short deadlock detection.

:func:`postgres_missing` says what is missing (the server programs, the
``psycopg`` driver, the user to run as) and how to install it, or returns
None when everything is there.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit import watchdog

__all__ = ["TempPostgres", "find_postgres_bin", "postgres_missing", "INSTALL_HINT"]

INSTALL_HINT = (
    "install PostgreSQL's server programs (Debian/Ubuntu: sudo apt-get install postgresql; "
    "conda: conda install -c conda-forge postgresql) and the driver (pip install 'psycopg[binary]')"
)

SETTINGS = {
    "listen_addresses": "''",  # unix socket only
    "port": "5432",
    "fsync": "off",  # throwaway data: speed over durability
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "deadlock_timeout": "'20ms'",  # find deadlocks fast (the default is 1 s)
    "max_connections": "40",
    "shared_buffers": "'16MB'",
    "log_min_messages": "warning",
}


def find_postgres_bin() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: from ``$PATH``, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``; None if there is none."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        version = Path(d).parent.name
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists() and version.isdigit():
            candidates.append((int(version), Path(d)))
    return max(candidates)[1] if candidates else None


def _run_as() -> Any:
    """The unprivileged user to run the server as when we are root (None when we are not root)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd  # Unix only, and only needed as root

    name = os.environ.get("LABKIT_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"running as root, PostgreSQL must run as an unprivileged user, and there is no user {name!r}; "
            "create one (useradd --system --no-create-home labkit-pg) and set LABKIT_PG_USER=labkit-pg"
        ) from None


def postgres_missing() -> str | None:
    """None if a :class:`TempPostgres` can start here; otherwise what is missing and how to install it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"the psycopg driver is not installed; {INSTALL_HINT}"
    if find_postgres_bin() is None:
        return f"PostgreSQL's initdb and pg_ctl were not found; {INSTALL_HINT}"
    try:
        _run_as()
    except RuntimeError as exc:
        return str(exc)
    return None


class TempPostgres:
    """A PostgreSQL server in a temporary folder, on a unix socket (see the module docstring)."""

    SUPERUSER = "labkit"

    def __init__(self, *, bin_dir: str | Path | None = None, start: bool = True) -> None:
        found = Path(bin_dir) if bin_dir is not None else find_postgres_bin()
        if found is None or not (found / "initdb").exists():
            raise RuntimeError(f"PostgreSQL's initdb was not found; {INSTALL_HINT}")
        self.bin_dir = found
        self.folder: Path | None = None
        self.running = False
        self._watcher: subprocess.Popen | None = None
        self._user = _run_as()
        if start:
            self.start()

    # -- paths -------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    @property
    def conninfo(self) -> str:
        """libpq connection string: the socket folder as host, the superuser, database postgres."""
        if self.folder is None:
            raise RuntimeError("the server is not started")
        return f"host={self.folder} port={SETTINGS['port']} user={self.SUPERUSER} dbname=postgres"

    @property
    def pid(self) -> int | None:
        """The server's process id, from its pid file (None when stopped)."""
        if self.folder is None:
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- running the programs ----------------------------------------------
    def _pg(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = env["LANG"] = "C.UTF-8"
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
            env.update(HOME=str(self.folder), USER=self._user.pw_name, LOGNAME=self._user.pw_name)
        proc = subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )
        if proc.returncode != 0:
            log = self.folder / "server.log" if self.folder else None
            tail = log.read_text()[-1500:] if log is not None and log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{tail}"
            )
        return proc

    def start(self) -> TempPostgres:
        """initdb in a new temporary folder, configure, start; returns self."""
        if self.running:
            return self
        self.folder = Path(tempfile.mkdtemp(prefix="labkit-pg-"))
        try:
            if self._user is not None:
                os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
            self._pg(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            )
            conf = self.data_dir / "postgresql.conf"
            lines = [f"{k} = {v}" for k, v in SETTINGS.items()]
            lines.append(f"unix_socket_directories = '{self.folder}'")
            with conf.open("a") as f:
                f.write("\n# labkit: a throwaway server for experiments\n" + "\n".join(lines) + "\n")
            self._pg("pg_ctl", "-D", str(self.data_dir), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                     "start")  # fmt: skip
            self.running = True
            atexit.register(self.stop)
            self._watcher = _start_watcher(self.folder)
        except BaseException:
            self._cleanup()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open transactions are rolled back) and delete the folder."""
        if self.folder is None:
            return
        try:
            if self.running and self.folder.exists():  # (gone if the watcher shut the server down)
                pid = self.pid
                try:
                    self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    if pid is not None:  # last resort: the server must not outlive us
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, 9)
                if pid is not None:
                    _wait_gone(pid, 10.0)
        finally:
            self.running = False
            atexit.unregister(self.stop)
            if self._watcher is not None:  # stopped cleanly: the watcher has nothing left to do
                watchdog.dismiss(self._watcher)
                self._watcher = None
            self._cleanup()

    def _cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # -- use -----------------------------------------------------------------
    def connect(self, **kwargs: Any) -> Any:
        """A new ``psycopg.Connection`` to the server (keyword arguments go to ``psycopg.connect``)."""
        import psycopg

        if not self.running:
            raise RuntimeError("the server is not running; call start() first")
        return psycopg.connect(self.conninfo, **kwargs)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.folder} (pid {self.pid})" if self.running else "stopped"
        return f"<TempPostgres {state}>"


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)


# -- a server must not outlive the Python that started it -------------------------------------------------
# pg_ctl detaches the server from our process group, and atexit does not run when a kernel is killed, so a
# small watcher in a session of its own waits for this process to go, then shuts the server down.
def _start_watcher(folder: Path) -> subprocess.Popen:
    """Start the watcher (:mod:`labkit.watchdog`'s protocol); it handles signals once this returns."""
    argv = [sys.executable, "-m", "labkit.txn.postgres", "watch", str(os.getpid()), str(folder)]
    what = "the watcher that stops the server if this Python dies"
    return watchdog.start(argv, what=what, start_new_session=True)


def _watch(parent: int, folder: str, poll: float = 0.5) -> None:
    """Wait until ``parent`` is gone, or until the watcher itself is told to go (SIGTERM, SIGINT), then
    stop the server in ``folder`` at once and remove the folder."""
    watchdog.watch(parent, poll)
    pid_file = Path(folder) / "data" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown: the server and its backends exit
        _wait_gone(pid, 10.0)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - runs in the watcher process
    if sys.argv[1:2] != ["watch"] or len(sys.argv) != 4:
        raise SystemExit(f"usage: python -m labkit.txn.postgres watch PARENT_PID FOLDER, got {sys.argv[1:]}")
    _watch(int(sys.argv[2]), sys.argv[3])
