"""Hand freed heap memory back to the OS, so a worker's RSS follows its live data.

glibc keeps freed memory in its arenas for reuse; after a burst (a backlog of planned
messages, a run of large batches) the process keeps its high-water mark as RSS although
Python's live objects are back to where they were. ``malloc_trim(0)`` releases the free
tops and pages of every arena. Elsewhere (musl, macOS) there is nothing to call.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None where the C library lacks it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


async def trim_loop(interval_s: float, trim: Callable[[], int] | None = None) -> None:
    """Trim the heap every ``interval_s`` seconds until cancelled (returns at once if it can't).

    It runs in a thread: a trim walks every arena and can take milliseconds."""
    trim = trim or malloc_trim()
    if trim is None or interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(trim)
        except Exception as exc:  # never let housekeeping take a worker down
            log.warning("malloc_trim failed: %s", exc)
            return
