"""Peak-RSS measurement of a publish, shared by every platform's streamed-upload test.

The publish runs in a child process (the "bridge process"); the stand-alone sandbox keeps
running in the test process, so what the emulator holds does not count. The child reports its
peak RSS before the first step and after the last (ru_maxrss, KiB on Linux).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import json, resource, sys, httpx
    from bridge.config import Settings
    from bridge.platforms.base import AccountRef, PostContent, PublishJob
    from bridge.platforms.registry import get_client

    spec = json.loads(sys.stdin.read())
    settings = Settings.from_env(spec["env"])
    client = get_client(settings, spec["platform"])
    job = PublishJob(post_id=1, account=AccountRef(**spec["account"]), content=PostContent(**spec["content"]),
                     caption=spec["content"].get("caption", ""), checkpoint={})
    job.caption = client.compose_caption(job.content)
    sent = {"max": 0}
    job.progress = lambda done, total: sent.__setitem__("max", max(sent["max"], done))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps = 0
    result = None
    while steps < 500:
        result = client.publish_step(job)
        steps += 1
        job.checkpoint = json.loads(json.dumps(result.checkpoint))  # persisted as JSON, like the engine
        if result.done:
            break
        if result.wait is not None:
            httpx.post(spec["control_url"] + "/process", json={"platform": spec["platform"]}, timeout=10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_before_kb": before, "rss_peak_kb": peak, "steps": steps, "done": bool(result and result.done),
                      "platform_post_id": result.platform_post_id if result else None, "bytes_reported": sent["max"]}))
""")


def publish_in_child(platform: str, env: dict, account: dict, content: dict, control_url: str,
                     timeout: float = 300) -> dict:
    """Run one publish to completion in a child process; returns its report (growth in MiB too)."""
    spec = {"platform": platform, "env": env, "account": account, "content": content, "control_url": control_url}
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(spec), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["growth_mib"] = (report["rss_peak_kb"] - report["rss_before_kb"]) / 1024
    return report
