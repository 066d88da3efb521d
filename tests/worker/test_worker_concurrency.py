"""The slot limiter behind queue_length."""

from __future__ import annotations

import asyncio

from worker.concurrency import SlotLimiter


def test_limiter_hands_a_released_slot_to_the_longest_waiter():
    async def scenario() -> list[str]:
        limiter = SlotLimiter(1)
        order: list[str] = []
        await limiter.acquire()

        async def waiter(name: str) -> None:
            await limiter.acquire()
            order.append(name)

        first = asyncio.create_task(waiter("first"))
        second = asyncio.create_task(waiter("second"))
        await asyncio.sleep(0)
        assert (limiter.running, limiter.waiting) == (1, 2)
        limiter.release()
        await first
        assert (limiter.running, limiter.waiting) == (1, 1)
        limiter.release()
        await second
        limiter.release()
        assert limiter.queue_length == 0
        return order

    assert asyncio.run(scenario()) == ["first", "second"]
