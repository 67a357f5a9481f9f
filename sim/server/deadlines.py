"""Coarse read deadlines: one timer per tick for all requests, not one per request.

``asyncio.timeout`` arms and cancels a timer handle per request; at thousands of reviews
per second with a 10 s timeout the loop's heap fills with cancelled handles, and the
measured cost was ~15 µs per request - a third of a whole review. A read deadline need
not be precise, so requests are grouped into buckets by the tick in which their deadline
falls; one ``call_at`` per bucket cancels whatever is still reading when it fires.
Entering and leaving cost a set insertion and removal.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

#: The message a deadline cancels a task with, to tell it from other cancellations.
EXPIRED = "peerpods-webhook: read deadline expired"


@dataclass(slots=True)
class Ticket:
    """One request's place in a bucket."""

    slot: int
    task: asyncio.Task[object]


class Deadlines:
    """Cancels tasks still registered ``timeout`` (to ``timeout + tick``) seconds after entering."""

    __slots__ = ("buckets", "tick", "timeout")

    def __init__(self, timeout: float, tick: float = 0.25) -> None:
        self.timeout = timeout
        self.tick = tick
        self.buckets: dict[int, set[asyncio.Task[object]]] = {}

    def enter(self) -> Ticket | None:
        """Start the clock for the current task (None outside a task: no deadline)."""
        task = asyncio.current_task()
        if task is None:
            return None
        loop = task.get_loop()
        slot = math.ceil((loop.time() + self.timeout) / self.tick)
        bucket = self.buckets.get(slot)
        if bucket is None:
            bucket = self.buckets[slot] = set()
            loop.call_at(slot * self.tick, self._expire, slot)
        bucket.add(task)
        return Ticket(slot, task)

    def leave(self, ticket: Ticket | None) -> None:
        """Stop the clock (the read finished, or failed otherwise)."""
        if ticket is not None:
            bucket = self.buckets.get(ticket.slot)
            if bucket is not None:
                bucket.discard(ticket.task)

    def _expire(self, slot: int) -> None:
        for task in self.buckets.pop(slot, ()):
            task.cancel(EXPIRED)


def expired(error: asyncio.CancelledError, ticket: Ticket | None) -> bool:
    """True when ``error`` is this module's deadline (then the task is un-cancelled)."""
    if ticket is None or error.args != (EXPIRED,):
        return False
    ticket.task.uncancel()
    return True
