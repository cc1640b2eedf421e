"""Logical and hybrid clocks: ordering events without trusting wall clocks.

* :class:`VectorClock` and :class:`Ordering`: happened-before and concurrency
  (Fidge 1988, Mattern 1989); also the version stamp of Dynamo-style values.
"""

from labkit.clocks.vector import Ordering, VectorClock

__all__ = ["Ordering", "VectorClock"]
