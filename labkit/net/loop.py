"""A private asyncio loop in a background thread, so notebooks can call the network synchronously.

A notebook cell calls ``cluster.put("x", "1")`` and gets the answer; behind it
the proxies, the clients and the nemesis run as tasks on one asyncio loop in a
daemon thread (:class:`LoopThread`). ``run(coro)`` hands a coroutine to that
loop and waits for its result. Jupyter's own loop is left alone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running in its own daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "labkit-net") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        # Cancel what is left, then close.
        pending = asyncio.all_tasks(self.loop)
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait (at most ``timeout`` seconds) for its result."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "LoopThread.run called from the loop's own thread; await the coroutine instead"
            )
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop (pending tasks are cancelled) and join the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
