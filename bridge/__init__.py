"""AuraReels Social Bridge: OAuth, token vault and exactly-once publishing to six platforms."""
import os as _os

__version__ = "0.1.0"

# The process that first imported the bridge. A process forked from it (an RQ job's work horse)
# carries this value with another pid of its own: it knows it lives only as long as its job.
STARTED_PID = _os.getpid()
