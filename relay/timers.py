"""Named one-shot timers of one connection, on the event loop, with an injectable clock.

``set(name, delay, callback)`` replaces a timer of the same name; callbacks do not run
once the owner is closed (``cancel_all``). ``now()`` is the wall clock that token
expiries are compared with (``time.time`` unless a test passes its own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Timers", "Clock"]

Clock = Callable[[], float]


class Timers:
    __slots__ = ("_loop", "_handles", "now", "_closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock = time.time) -> None:
        self._loop = loop
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self.now = clock
        self._closed = False

    def set(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` in ``delay`` seconds (at once if negative), replacing ``name``."""
        self.cancel(name)
        if not self._closed:
            self._handles[name] = self._loop.call_later(max(0.0, delay), self._fire, name, callback)

    def at(self, name: str, when: float, delay_after: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` ``delay_after`` seconds after the wall-clock time ``when``."""
        self.set(name, when - self.now() + delay_after, callback)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        self._closed = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, name: str, callback: Callable[[], None]) -> None:
        self._handles.pop(name, None)
        if not self._closed:
            callback()
