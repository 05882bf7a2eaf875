"""The fleet-wide cap of each platform's uploads in flight (`AURAREELS_CONCURRENCY_<PLATFORM>`).

What the cap protects is the bandwidth to the platform and the bridge's share of it: it is taken
around each step with an effect that follows a post's publishing call (upload chunks, finalising,
the second call of two-step publishes), one step at a time, never for a whole run. A post's reads
before its publishing call, the publishing call itself and status polls never wait for it, so a
due post is never held behind another post's upload or processing.
"""
from __future__ import annotations

import time

from bridge.runtime import Runtime

# Atomic "take a slot if fewer than cap are held": slots are sorted-set members scored by expiry,
# so a slot of a killed worker frees itself.
_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""


class PlatformCap:
    """At most `Settings.concurrency_cap(platform)` steps of one platform's posts at once, fleet-wide."""

    _script = None

    def __init__(self, rt: Runtime, platform: str):
        self.rt, self.key = rt, f"bridge:conc:{platform}"
        self.cap = rt.settings.concurrency_cap(platform)

    def acquire(self, owner: str) -> bool:
        now = time.time()
        try:
            if PlatformCap._script is None:  # EVALSHA, not the script's text on every call
                PlatformCap._script = self.rt.redis.register_script(_SCRIPT)
            return bool(PlatformCap._script(keys=[self.key], args=[now, now + 4 * self.rt.settings.lease_seconds,
                                                                   self.cap, owner], client=self.rt.redis))
        except Exception:  # no Redis, no cap: MySQL's lease still guarantees one publisher per post
            return True

    def release(self, owner: str) -> None:
        try:
            self.rt.redis.zrem(self.key, owner)
        except Exception:
            pass
