"""Admission control: bounded in-flight work and queue per endpoint, deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from slipway.errors import DeadlineExceeded, Overloaded
from slipway.serving.admission import Admission


def test_beyond_inflight_and_queue_requests_are_refused_at_once() -> None:
    async def scenario() -> tuple[list[str], tuple[int, int]]:
        admission = Admission(max_inflight=2, max_queue=3)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def request() -> None:
            try:
                async with admission.slot("iris"):
                    await release.wait()
                outcomes.append("ran")
            except Overloaded:
                outcomes.append("shed")

        tasks = [asyncio.create_task(request()) for _ in range(8)]
        await asyncio.sleep(0.01)
        load = admission.load("iris")
        release.set()
        await asyncio.gather(*tasks)
        return outcomes, load

    outcomes, load = asyncio.run(scenario())
    assert load == (2, 3)  # two running, three waiting, when the rest arrived
    assert sorted(outcomes) == ["ran"] * 5 + ["shed"] * 3


def test_endpoints_do_not_share_capacity() -> None:
    async def scenario() -> str:
        admission = Admission(max_inflight=1, max_queue=0)
        async with admission.slot("busy"):
            async with admission.slot("other"):
                return "ran"

    assert asyncio.run(scenario()) == "ran"


def test_a_request_past_its_deadline_is_not_run() -> None:
    async def scenario() -> list[str]:
        admission = Admission(max_inflight=1, max_queue=10)
        events: list[str] = []

        async def slow() -> None:
            async with admission.slot("iris"):
                await asyncio.sleep(0.2)
                events.append("slow done")

        async def hurried() -> None:
            try:
                async with admission.slot("iris", deadline=time.monotonic() + 0.05):
                    events.append("hurried ran")
            except DeadlineExceeded:
                events.append("hurried 504")

        await asyncio.gather(slow(), hurried())
        # The slot the hurried request gave up is free again.
        async with admission.slot("iris", deadline=time.monotonic() + 1):
            events.append("next ran")
        return events

    assert asyncio.run(scenario()) == ["hurried 504", "slow done", "next ran"]


def test_an_already_expired_deadline_fails_without_waiting() -> None:
    async def scenario() -> None:
        async with Admission().slot("iris", deadline=time.monotonic() - 1):
            pytest.fail("ran past its deadline")

    with pytest.raises(DeadlineExceeded):
        asyncio.run(scenario())


def test_slots_are_handed_over_in_arrival_order_and_all_released() -> None:
    async def scenario() -> tuple[list[int], tuple[int, int]]:
        admission = Admission(max_inflight=1, max_queue=10)
        order: list[int] = []

        async def request(i: int) -> None:
            async with admission.slot("iris"):
                order.append(i)
                await asyncio.sleep(0)

        await asyncio.gather(*(request(i) for i in range(6)))
        return order, admission.load("iris")

    order, load = asyncio.run(scenario())
    assert order == list(range(6)) and load == (0, 0)


def test_running_counts_every_endpoints_requests_through_hand_overs_and_refusals() -> None:
    """``running`` decides whether a model call may run inline (alone), so it must count
    requests across endpoints and come back to zero however they end."""

    async def scenario() -> tuple[int, int, int]:
        admission = Admission(max_inflight=1, max_queue=10)
        release = asyncio.Event()

        async def request(endpoint: str) -> None:
            async with admission.slot(endpoint):
                assert admission.running >= 1
                await release.wait()

        tasks = [asyncio.create_task(request(e)) for e in ("iris", "iris", "wine")]
        await asyncio.sleep(0.01)
        running = admission.running  # one iris and one wine; the second iris waits
        with pytest.raises(DeadlineExceeded):
            async with admission.slot("wine", deadline=time.monotonic() - 1):
                pytest.fail("ran past its deadline")
        after_refusal = admission.running
        release.set()
        await asyncio.gather(*tasks)  # the second iris ran on the first one's slot
        return running, after_refusal, admission.running

    assert asyncio.run(scenario()) == (2, 2, 0)
