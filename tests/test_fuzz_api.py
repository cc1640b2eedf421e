"""labkit's public API, walked with bad arguments (see tests/fuzz_api.py for the catalogue).

Every subpackage must answer every bad value with a ValueError or TypeError (or an error of its
own), within a few seconds, and must not accept a value its annotations rule out. The default run
gives slow callables a shorter catalogue; ``pytest -m slow`` gives every callable every value.
"""

from __future__ import annotations

import math
import time

import pytest

from tests import fuzz_api as fuzz

# Subpackages with findings left, and why. This list only shrinks: a subpackage that comes out
# clean fails the test until it is removed from here.
KNOWN: dict[str, str] = {}


def _check(package: str, *, full: bool) -> None:
    start = time.perf_counter()
    report = fuzz.fuzz_package(package, full=full)
    print(f"\n{fuzz.table([report])}\n({time.perf_counter() - start:.1f} s)")
    problems = "\n".join(f"{o.kind}: {o.where}: {o.detail}" for o in report.problems)
    if package in KNOWN:
        if report.problems:
            pytest.xfail(f"{KNOWN[package]} ({len(report.problems)} findings)")
        pytest.fail(f"{package} is clean now: remove it from KNOWN")
    assert not report.problems, f"{len(report.problems)} findings in {package}:\n{problems}"
    assert report.tried > 0 or report.skipped, f"{package}: nothing to call"


@pytest.mark.parametrize("package", fuzz.packages())
def test_bad_arguments_get_a_clear_error_quickly(package):
    _check(package, full=False)


@pytest.mark.slow
@pytest.mark.parametrize("package", fuzz.packages())
def test_bad_arguments_get_a_clear_error_quickly_full_catalogue(package):
    _check(package, full=True)


# ---------------------------------------------------------------- the fuzzer catches what it should
def _silent(n: int = 3) -> int:
    return n


def _crashes(n: int = 1) -> int:
    return [1, 2, 3][n]  # IndexError for a large n


def _hangs(n: int = 3) -> None:
    for _ in range(n):  # 10**9 rounds take minutes
        pass


def _careful(n: int = 3) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 10:
        raise ValueError(f"n must be an int from 0 to 9, got {n!r}")
    return n


@pytest.mark.parametrize(
    ("fn", "kind"), [(_silent, "silent"), (_crashes, "other"), (_hangs, "hang"), (_careful, None)]
)
def test_the_fuzzer_sorts_each_kind_of_failure(fn, kind, monkeypatch):
    monkeypatch.setattr(fuzz, "LIMIT", 0.2)
    report = fuzz.Report("planted")
    fuzz.fuzz_callable(report, fn.__name__, fn, {}, full=True, rebuild=None)
    kinds = {o.kind for o in report.problems}
    assert kinds == ({kind} if kind else set()) or kind in kinds, (fn.__name__, report.problems)
    assert report.tried == len(fuzz.BAD)


def test_annotations_decide_what_is_ruled_out():
    assert fuzz.ruled_out(int, "3") and fuzz.ruled_out(int, True) and fuzz.ruled_out(float, math.nan)
    assert fuzz.ruled_out(int | None, "x") and not fuzz.ruled_out(int | None, None)
    assert fuzz.ruled_out(str, None) and not fuzz.ruled_out(str, "")
    assert not fuzz.ruled_out(int, -1)  # ranges are for the docstring, not the annotation
    assert not fuzz.ruled_out(object, math.nan)
