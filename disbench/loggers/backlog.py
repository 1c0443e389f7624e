"""The queue between the training loop and the loggers' thread: bounded, so that
a slow logger (W&B over a slow network, say) cannot make it grow without limit.

Policy. Each member of a group keeps at most ``max_rows`` queued scalar rows and
``max_images`` queued image sets; when one more arrives, the *oldest* queued one
of that kind is dropped and counted. Adding never waits, so the training loop
never waits for a logger. Why the oldest: a watcher wants the run's present,
and a logger that keeps lagging then still sees the newest rows and pictures
(and always the last ones of the run) instead of a stale stretch followed by
nothing. Images go first in practice: an image set is megabytes and comes
every ``image_every`` steps, so its bound is small; a row is about a kilobyte.
The config, metrics and ``close`` are never dropped: there are few of them
(metrics come at evaluations, which cost far more than delivering them) and a
logger needs every one.

Order is kept within a member: items leave in the order they came, less what
was dropped.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque

ROWS, IMAGES, OTHER = "rows", "images", "other"
MAX_QUEUED_ROWS = 1000   # per member: ~1 MB of rows
MAX_QUEUED_IMAGES = 4    # per member: a few MB each (a traversal is one 64-pixel row per latent)


class Backlog:
    """A bounded FIFO per member and kind (:data:`ROWS`, :data:`IMAGES`, :data:`OTHER`);
    :meth:`get` takes the oldest item across all of them."""

    def __init__(self, members: int, max_rows: int = MAX_QUEUED_ROWS, max_images: int = MAX_QUEUED_IMAGES):
        if max_rows < 1 or max_images < 1:
            raise ValueError("a logger queue keeps at least one row and one image set")
        self._limits = {ROWS: max_rows, IMAGES: max_images, OTHER: None}
        self._queues = [{kind: deque() for kind in self._limits} for _ in range(members)]
        self._dropped = [{ROWS: 0, IMAGES: 0} for _ in range(members)]
        self._order = itertools.count()  # arrival numbers: get() serves the smallest
        self._ready = threading.Condition()
        self._ended = False

    def put(self, k: int, kind: str, item) -> bool:
        """Queue ``item`` for member ``k``; True when an older item of its kind was dropped for it."""
        with self._ready:
            queue, limit = self._queues[k][kind], self._limits[kind]
            dropped = limit is not None and len(queue) >= limit
            if dropped:
                queue.popleft()
                self._dropped[k][kind] += 1
            queue.append((next(self._order), k, item))
            self._ready.notify()
        return dropped

    def end(self) -> None:
        """No more items: :meth:`get` returns None once the queue is empty."""
        with self._ready:
            self._ended = True
            self._ready.notify()

    def get(self):
        """The oldest queued ``(k, item)``, waiting for one; None after :meth:`end` and empty."""
        with self._ready:
            while True:
                heads = [q for member in self._queues for q in member.values() if q]
                if heads:
                    _, k, item = min(heads, key=lambda q: q[0][0]).popleft()
                    return k, item
                if self._ended:
                    return None
                self._ready.wait()

    def pending(self, k: int) -> int:
        """How many items member ``k`` has queued."""
        with self._ready:
            return sum(len(q) for q in self._queues[k].values())

    def dropped(self) -> list[dict[str, int]]:
        """How many rows and image sets each member has had dropped so far."""
        with self._ready:
            return [dict(counts) for counts in self._dropped]
