"""Before and after in one run: measure this checkout's labkit beside an earlier commit's.

A benchmark hands :func:`compare` a few lines of Python that build a workload
and print the CPU seconds (``time.process_time``) it took. Each snippet runs
in a fresh interpreter, once with the labkit of ``--baseline`` (extracted with
``git archive`` into a cache directory) and once with this checkout's, the two
interleaved, so a busy machine slows both alike. Only CPU time is compared.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The last commit before issue #14's simulator and Raft work: the "before" of its tables.
DEFAULT_BASELINE = "c6c0fdb"


def checkout(rev: str) -> Path:
    """A directory holding ``labkit`` as of ``rev`` (extracted once, then reused)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = Path(tempfile.gettempdir()) / f"labkit-baseline-{sha}"
    if not (target / "labkit").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "labkit"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def cpu_seconds(code: str, path: Path | None = None) -> list[float]:
    """Run ``code`` in a fresh interpreter (with ``path`` first on sys.path); the numbers it prints."""
    root = path or REPO
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (root, REPO / "benchmarks"))
    # -P and cwd=root: nothing but ``root`` can supply labkit (not the current directory).
    check = f"import labkit; assert labkit.__file__.startswith({str(root)!r}), labkit.__file__\n"
    out = subprocess.run(
        [sys.executable, "-P", "-c", check + code], env=env, capture_output=True, text=True, cwd=root
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark snippet failed:\n{out.stderr[-2000:]}")
    return [float(x) for x in out.stdout.split()]


@dataclass
class Timing:
    """CPU seconds of repeated runs of one snippet."""

    runs: list[list[float]]

    def median(self, i: int = 0) -> float:
        return statistics.median(r[i] for r in self.runs)

    def best(self, i: int = 0) -> float:
        return min(r[i] for r in self.runs)


def compare(
    codes: dict[str, str], baseline: str | None, repeats: int = 3
) -> dict[str, tuple[Timing, Timing | None]]:
    """``name -> (this checkout, baseline or None)``, each snippet run ``repeats`` times, interleaved."""
    base = checkout(baseline) if baseline else None
    now: dict[str, list[list[float]]] = {k: [] for k in codes}
    before: dict[str, list[list[float]]] = {k: [] for k in codes}
    for _ in range(repeats):
        for name, code in codes.items():
            if base is not None:
                before[name].append(cpu_seconds(code, base))
            now[name].append(cpu_seconds(code))
    return {k: (Timing(now[k]), Timing(before[k]) if base is not None else None) for k in codes}


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a plain-text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n" + "-" * len(title))
    for r in [header, *rows]:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
