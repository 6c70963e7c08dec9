"""Atomic fixed-window counters: a Lua script in Redis, or one SQL upsert per counter.

A window starts with the first request that finds no live counter and lasts WINDOW_MS; a
request is admitted only if every counter it is charged to is under its limit. Both
backends decide and count in one atomic step, so concurrent requests cannot slip past a
limit the way read-then-write throttles (DRF's cache-based ones) let them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from ratelimits.models import RateCounter

log = logging.getLogger(__name__)

WINDOW_MS = 60_000

# KEYS: the counters; ARGV[1]: window in ms; ARGV[i + 1]: the limit of KEYS[i].
# Checks every counter first, so a refused request uses up none of them.
_LUA = """
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = window
    end
    return {0, i, ttl}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, window)
  end
end
return {1, 0, 0}
"""


@dataclass(frozen=True)
class Counter:
    key: str
    limit: int
    scope: str  # what the limit is on, for the caller's message: "workspace" or "token"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    counter: Counter | None = None
    retry_after: int = 0  # whole seconds until the refusing counter's window ends


def hit(counters: list[Counter]) -> Decision:
    """Count one request against every counter, or refuse it naming the exhausted one."""
    if settings.REDIS_URL:
        return _hit_redis(counters)
    return _hit_sql(counters)


def _seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


# --- Redis ---------------------------------------------------------------------------------

_redis_lock = threading.Lock()
_redis_script = None


def _script():
    """The script object (EVALSHA, re-sent by redis-py on NOSCRIPT), one client per process."""
    global _redis_script
    with _redis_lock:
        if _redis_script is None:
            import redis

            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            _redis_script = client.register_script(_LUA)
        return _redis_script


def _hit_redis(counters: list[Counter]) -> Decision:
    import redis

    try:
        allowed, index, ttl = _script()(
            keys=[c.key for c in counters], args=[WINDOW_MS, *[c.limit for c in counters]]
        )
    except redis.RedisError as exc:
        # Refusing every API call while Redis is away would take the product down with it.
        log.warning("rate limiting skipped, Redis unavailable: %s", type(exc).__name__)
        return Decision(True)
    if allowed:
        return Decision(True)
    return Decision(False, counters[int(index) - 1], _seconds(int(ttl)))


# --- SQL -----------------------------------------------------------------------------------


def _hit_sql(counters: list[Counter]) -> Decision:
    # One commit for all counters. A refused counter stops the rest being charged: a token
    # hammering past its own limit must not use up its workspace's.
    with transaction.atomic():
        for counter in counters:
            hits, window_ends = _bump(counter.key)
            if hits > counter.limit:
                return Decision(False, counter, _seconds(window_ends - time.time() * 1000))
    return Decision(True)


def _bump(key: str) -> tuple[int, int]:
    """One atomic upsert: a new or expired window starts at 1, a live one counts up."""
    now = int(time.time() * 1000)
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    pk = connection.ops.quote_name("key")
    sql = (
        f"INSERT INTO {table} AS c ({pk}, window_ends_ms, hits) VALUES (%s, %s, 1) "
        f"ON CONFLICT ({pk}) DO UPDATE SET "
        "hits = CASE WHEN c.window_ends_ms <= %s THEN 1 ELSE c.hits + 1 END, "
        "window_ends_ms = CASE WHEN c.window_ends_ms <= %s THEN %s ELSE c.window_ends_ms END "
        "RETURNING hits, window_ends_ms"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, now + WINDOW_MS, now, now, now + WINDOW_MS])
        hits, window_ends = cursor.fetchone()
    return int(hits), int(window_ends)
