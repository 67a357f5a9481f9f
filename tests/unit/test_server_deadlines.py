"""Coarse read deadlines cancel only what is still reading, and say so."""

from __future__ import annotations

import asyncio

from sim.server.deadlines import Deadlines, expired


def test_a_read_past_its_deadline_is_cancelled_as_expired() -> None:
    async def scenario() -> str:
        deadlines = Deadlines(0.05, tick=0.01)
        ticket = deadlines.enter()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError as error:
            return "expired" if expired(error, ticket) else "other"
        finally:
            deadlines.leave(ticket)
        return "finished"

    assert asyncio.run(asyncio.wait_for(scenario(), 2)) == "expired"


def test_a_read_that_finishes_in_time_is_left_alone() -> None:
    async def scenario() -> str:
        deadlines = Deadlines(0.05, tick=0.01)
        ticket = deadlines.enter()
        await asyncio.sleep(0.001)
        deadlines.leave(ticket)
        await asyncio.sleep(0.1)  # past the deadline: nothing may cancel us now
        return "finished"

    assert asyncio.run(scenario()) == "finished"


def test_another_cancellation_is_not_mistaken_for_expiry() -> None:
    async def victim(deadlines: Deadlines) -> str:
        ticket = deadlines.enter()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError as error:
            return "expired" if expired(error, ticket) else "other"
        finally:
            deadlines.leave(ticket)
        return "finished"

    async def scenario() -> str:
        task = asyncio.create_task(victim(Deadlines(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(scenario()) == "other"


def test_many_requests_share_one_bucket() -> None:
    async def scenario() -> int:
        deadlines = Deadlines(10, tick=1)
        tickets = [deadlines.enter() for _ in range(100)]
        buckets = len(deadlines.buckets)
        for ticket in tickets:
            deadlines.leave(ticket)
        return buckets

    assert asyncio.run(scenario()) <= 2
