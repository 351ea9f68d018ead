"""In-process token buckets: per API token and per client address, refusing with a wait time."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    """`level` requests may be made now; it refills at `rate` a second up to `capacity`."""

    level: float
    stamp: float


class RateLimiter:
    """Token buckets by key (`token:<hash>`, `addr:<ip>`, ...), each holding up to `capacity`
    requests and refilling `per_minute` a minute.

    Refusals cost the refused caller nothing but an answer: nobody waits, so a flood from one
    token or address never slows anyone else. Counts live in this process only (one API
    process per host: `clipper up` and `clipper api` run one). At most `max_keys` buckets are
    kept; the least recently used go first, and a forgotten bucket comes back full, which only
    ever errs towards letting a request through.
    """

    def __init__(self, per_minute: float, capacity: float | None = None, *,
                 max_keys: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend `cost` from `key`'s bucket: 0.0 when allowed, else the seconds until it could
        be (nothing is spent on a refusal, so retrying after that wait succeeds)."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = Bucket(self.capacity, now)
            else:
                bucket.level = min(self.capacity,
                                   bucket.level + (now - bucket.stamp) * self.rate)
                bucket.stamp = now
            self._buckets[key] = bucket  # most recently used last
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            if bucket.level >= cost:
                bucket.level -= cost
                return 0.0
            return (cost - bucket.level) / self.rate


def retry_after(wait: float) -> int:
    """The `Retry-After` header's whole seconds for a wait (at least 1)."""
    return max(1, math.ceil(wait))
