"""How the metrics' torch kernels use CPU cores: whole tasks in parallel, each on one thread.

The kernels work in cache-sized blocks, many small ops each. Spread over
torch's intra-op (OpenMP) threads, every op becomes a parallel region, and
when another process holds a core each region waits for a thread to be
scheduled: on a shared 2-core machine that made RMIG 10x and the sampled
MIG 60x slower than one thread. So on CPU each task (a chunk of images, an
entropy estimate) runs on a single intra-op thread, and up to
``torch.get_num_threads()`` tasks run at once on Python threads (torch
releases the GIL inside its kernels). Results come back in task order and
every task is single-threaded, so the numbers are bit-identical whatever the
core count. On a GPU tasks simply run in order.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

Task = TypeVar("Task")
Result = TypeVar("Result")


def map_in_order(fn: Callable[[Task], Result], tasks: Iterable[Task], device: torch.device) -> Iterator[Result]:
    """``fn`` over ``tasks``, results in task order (see the module docstring).

    At most two tasks per worker are in flight or waiting to be consumed, so
    memory stays bounded however many tasks there are.
    """
    if device.type != "cpu":
        yield from map(fn, tasks)
        return
    workers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers <= 1:
            yield from map(fn, tasks)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                pending = deque()
                for task in tasks:
                    pending.append(pool.submit(fn, task))
                    if len(pending) >= 2 * workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
    finally:
        torch.set_num_threads(workers)
