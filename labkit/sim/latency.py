"""Latency distributions for simulated links.

Each distribution draws a one-way delay in seconds from the simulator's
seeded generator. Reordering is not a separate knob: when delays vary, a
message sent later can overtake one sent earlier, exactly as on a real
network (DDIA ch. 8, "Unreliable Networks").
"""

from __future__ import annotations

import numbers
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid

__all__ = ["Latency", "Fixed", "Uniform", "Exponential", "as_latency"]


def _check_delay(name: str, value: float) -> float:
    return valid.number(name, value, ge=0, unit="seconds")


_Random = random.Random


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, _Random):
        raise valid.ArgumentTypeError(f"rng must be a random.Random, got {valid.shown(rng)}")


class Latency(ABC):
    """Base class: ``sample(rng)`` returns one delay in seconds (>= 0)."""

    __slots__ = ()

    @abstractmethod
    def sample(self, rng: random.Random) -> float:
        """Draw one delay."""

    def _draw(self, rng: random.Random) -> float:
        """Draw one delay with the simulator's own generator: ``sample`` without its check of ``rng``."""
        return self.sample(rng)

    @property
    @abstractmethod
    def mean(self) -> float:
        """The average delay in seconds."""


@dataclass(frozen=True, slots=True)
class Fixed(Latency):
    """Every message takes exactly ``delay`` seconds (no reordering)."""

    delay: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "delay", _check_delay("delay", self.delay))

    def sample(self, rng: random.Random) -> float:
        _check_rng(rng)
        return self._draw(rng)

    def _draw(self, rng: random.Random) -> float:
        return self.delay

    @property
    def mean(self) -> float:
        return self.delay


@dataclass(frozen=True, slots=True)
class Uniform(Latency):
    """Delays spread evenly between ``low`` and ``high`` seconds."""

    low: float = 0.005
    high: float = 0.015

    def __post_init__(self) -> None:
        low = _check_delay("low", self.low)
        high = _check_delay("high", self.high)
        if high < low:
            raise ValueError(f"high must be >= low, got low={low!r}, high={high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng: random.Random) -> float:
        _check_rng(rng)
        return self._draw(rng)

    def _draw(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


@dataclass(frozen=True, slots=True)
class Exponential(Latency):
    """``minimum`` plus an exponential tail with the given mean of the tail.

    A long tail is what real networks look like: most messages are quick,
    a few are very slow, and a timeout cannot tell a slow one from a lost one.
    """

    mean_extra: float = 0.01
    minimum: float = 0.0

    def __post_init__(self) -> None:
        extra = _check_delay("mean_extra", self.mean_extra)
        if extra == 0:
            raise ValueError("mean_extra must be > 0 seconds (use Fixed for constant delays)")
        object.__setattr__(self, "mean_extra", extra)
        object.__setattr__(self, "minimum", _check_delay("minimum", self.minimum))

    def sample(self, rng: random.Random) -> float:
        _check_rng(rng)
        return self._draw(rng)

    def _draw(self, rng: random.Random) -> float:
        return self.minimum + rng.expovariate(1.0 / self.mean_extra)

    @property
    def mean(self) -> float:
        return self.minimum + self.mean_extra


def as_latency(value: Latency | float, name: str = "latency") -> Latency:
    """Accept a :class:`Latency` or a plain number of seconds (``Fixed``)."""
    if isinstance(value, Latency):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise valid.ArgumentTypeError(
            f"{name} must be a Latency (Fixed, Uniform, Exponential) or a number of seconds, got {valid.shown(value)}"
        )
    return Fixed(_check_delay(name, value))
