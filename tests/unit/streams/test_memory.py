"""Heap trimming of a worker (streams.memory), with a fake trim where it matters."""

import asyncio
import sys

import pytest

from streams.memory import malloc_trim, trim_loop


def test_the_loop_trims_every_interval_until_cancelled():
    calls: list[int] = []

    async def go() -> None:
        task = asyncio.create_task(trim_loop(0.01, lambda: calls.append(1) or 1))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert len(calls) >= 3


def test_off_returns_at_once():
    asyncio.run(asyncio.wait_for(trim_loop(0, lambda: 1), 1))


def test_a_failing_trim_stops_the_loop_without_raising():
    def boom() -> int:
        raise OSError("no")

    asyncio.run(asyncio.wait_for(trim_loop(0.01, boom), 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_trim_is_found_and_callable_here():
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)
