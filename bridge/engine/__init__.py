"""The publishing engine: a post reaches its platform once, or visibly not at all.

    claim.py    the conditional UPDATE that makes one worker a post's only publisher
    leases.py   leases in MySQL, renewed by one thread per process
    caps.py     the fleet-wide cap of each platform's uploads in flight
    driver.py   one post's steps from its checkpoint to an outcome; what each platform error means
    run.py      a woken post's run: claim, then drive; unexpected errors bounded
    prearm.py   scheduled posts taken and prepared before their time (wake-ups, the armer)
    dispatch.py prepared posts claimed and started at their instant, publishing calls first
    sweeper.py  MySQL is the truth: what Redis lost or a dead worker left is found again
    n8n.py      the n8n scheduling mode's hand-over and wake-up call

MySQL is the truth: Redis only carries wake-ups, and the sweeper rebuilds them from MySQL.
"""
from bridge.engine.claim import claim
from bridge.engine.dispatch import dispatcher
from bridge.engine.prearm import armer, wake
from bridge.engine.run import run_post

__all__ = ["armer", "claim", "dispatcher", "run_post", "wake"]
