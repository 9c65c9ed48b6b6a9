"""A lock file held by another process, for tests of the lock files that make processes take turns."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def flock_held_elsewhere(path: str, seconds: float = 0.6) -> Iterator[None]:
    """Inside the block another process holds an exclusive flock on `path`, for `seconds` from the start."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, time\n"
        f"fd = os.open({path!r}, os.O_RDWR | os.O_CREAT)\n"
        f"fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep({seconds!r})\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.wait(timeout=10)
        holder.stdout.close()
