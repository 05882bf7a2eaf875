"""`aurareels-bridge worker` for the reliability runs.

The only difference from the real command: `AURAREELS_RETRY_DELAYS` (seconds, comma-separated)
replaces the engine's transient back-off (1, 5 and 15 minutes in production), so a storm in which
a fifth of the platform calls fail finishes in minutes. Everything else is the production code.
"""
from __future__ import annotations

import os
import sys


def main() -> int:
    delays = os.environ.get("AURAREELS_RETRY_DELAYS")
    if delays:
        from bridge.engine import driver

        driver.TRANSIENT_DELAYS = tuple(float(d) for d in delays.split(",") if d.strip())
    from bridge.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
