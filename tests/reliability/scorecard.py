"""The scorecard: one markdown table from the runs' result files (`scripts/reliability` writes it).

    python -m tests.reliability.scorecard --out bench-results/reliability.md

Reads .bench/reliability/<run>/result.json (storm, redis-wipe, mariadb-restart, time) and the
security suite's JUnit file .bench/reliability/security.xml.
"""
from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from tests.reliability.harness import RESULTS, machine

RUNS = (("storm", "Storm"), ("redis-wipe", "Redis FLUSHALL + restart mid-storm"),
        ("mariadb-restart", "MariaDB restart mid-storm"), ("time", "Time: posts across DST changes"))


def _n(value) -> str:
    return f"{value:,}" if isinstance(value, int) else ("–" if value is None else str(value))


def _s(value) -> str:
    return "–" if value is None else f"{value:g} s"


def load(name: str) -> dict | None:
    path = RESULTS / name / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def security() -> dict | None:
    path = RESULTS / "security.xml"
    if not path.exists():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    files = Counter()
    for case in root.iter("testcase"):
        files[case.get("classname", "").rsplit(".", 1)[-1]] += 1
    return {"total": total, "failed": failed, "skipped": skipped, "by_file": dict(files)}


def verdict(result: dict) -> str:
    t = result["totals"]
    ok = (t["lost"] == 0 and t["duplicates"] == 0 and t["phantom_publications"] == 0 and t["false_success"] == 0
          and t["early"] == 0 and t.get("published_but_marked_failed", 0) == 0)
    if result["name"] != "time":
        ok = ok and t["posts"] == result.get("posts_planned")
    return "pass" if ok else "FAIL"


def _stuck_on(item: dict) -> str:
    jobs = {k.split("-")[0]: (v.get("status") if isinstance(v, dict) else "no job").replace("JobStatus.", "").lower()
            for k, v in item.get("jobs", {}).items()}
    return f"{item['status']} post, publish job {jobs.get('publish', '?')}, wake-up job {jobs.get('wake', '?')}"


def load_cell(result: dict) -> str:
    t = result["totals"]
    if result["name"] == "time":
        return (f"{_n(t['posts'])} posts on 6 platforms, naive and ISO times before, inside and after a "
                f"spring-forward gap and a fall-back overlap")
    return (f"{_n(t['posts'])} posts, {_n(result['accounts'])} accounts, 6 platforms, due within "
            f"{round(result['window_seconds'])} s; {result['workers']} workers")


def faults_cell(result: dict) -> str:
    t = result["totals"]
    parts = []
    if t["faults_total"]:
        parts.append(f"{_n(t['faults_total'])} of {_n(t['api_requests'])} platform calls "
                     f"({100 * t['faults_total'] / max(1, t['api_requests']):.0f} %)")
    if result.get("worker_kills"):
        parts.append(f"{result['worker_kills']} worker SIGKILLs")
    for event in result.get("events", []):
        action = event["action"]
        label = {"flushall": "Redis FLUSHALL", "redis_restart": "Redis server killed and restarted"}.get(
            action, "MariaDB stopped " + action.split(":")[-1] + " s and restarted" if action.startswith("mariadb")
            else action)
        parts.append(f"{label} at +{event['at_seconds_after_first_due']:g} s")
    down = [p for p in result.get("api_probes", []) if p["when"] == "database down"]
    if down:
        answers = Counter(f"{p['status']} {p['code']}" for p in down)
        parts.append("API while down: " + ", ".join(f"{k} ×{v}" for k, v in answers.items()))
    return "; ".join(parts) or "none"


def lost_cell(result: dict) -> str:
    t = result["totals"]
    extra = []
    if t.get("false_success"):
        extra.append(f"{t['false_success']} marked published but absent")
    if t.get("published_but_marked_failed"):
        extra.append(f"{t['published_but_marked_failed']} published but marked failed")
    return _n(t["lost"]) + (f" ({'; '.join(extra)})" if extra else "")


def render(mode: str) -> str:
    results = {name: load(name) for name, _ in RUNS}
    sec = security()
    any_result = next((r for r in results.values() if r), None)
    box = (any_result or {}).get("machine") or machine()
    date = (any_result or {}).get("date", "")
    lines = [
        "# Reliability scorecard",
        "",
        f"Produced by `scripts/reliability{' --quick' if mode == 'quick' else ''}` on {date}, on "
        f"{box['host']}: {box['cpus']} CPU ({box['cpu']}), {box['memory']}, {box['os']}, Python {box['python']}, "
        f"MariaDB {box['mariadb']}, {box['redis']}.",
        "",
        "| run | load held | faults injected | bad inputs tried | duplicates | lost | lateness p50 / p99 (max) | "
        "result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, title in RUNS:
        r = results[name]
        if r is None:
            lines.append(f"| {title} | not run | | | | | | – |")
            continue
        t = r["totals"]
        lines.append(f"| {title} | {load_cell(r)} | {faults_cell(r)} | – | {_n(t['duplicates'])} | {lost_cell(r)} | "
                     f"{_s(t['lateness_p50'])} / {_s(t['lateness_p99'])} ({_s(t['lateness_max'])}) | {verdict(r)} |")
    if sec:
        lines.append(f"| Security suite | – | – | {_n(sec['total'])} cases: JWT on every user route, IDOR, OAuth state "
                     f"and code, internal key, SSRF, body and field limits, secrets in logs and responses | – | – | – | "
                     f"{'pass' if not sec['failed'] else 'FAIL (' + str(sec['failed']) + ')'} |")
    else:
        lines.append("| Security suite | not run | | | | | | – |")
    storm = results.get("storm")
    for name, title in RUNS:
        r = results[name]
        if not r or name == "time":
            continue
        lines += ["", f"### {title}: per platform", "",
                  "| platform | posts | published | failed (by code) | unconfirmed | duplicates | lost | "
                  "lateness p50 / p99 | faults / calls |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for platform, v in r["per_platform"].items():
            codes = ", ".join(f"{c} {n}" for c, n in v["failed_by_code"].items())
            lines.append(f"| {platform} | {v['posts']} | {v['published']} | {v['failed']}{f' ({codes})' if codes else ''}"
                         f" | {v['unconfirmed']} | {v['duplicates']} | {v['lost']} | {_s(v['lateness_p50'])} / "
                         f"{_s(v['lateness_p99'])} | {v['faults_total']} / {v['api_requests']} |")
    if storm:
        plan = storm["plan"]
        lines += [
            "",
            "How the runs are made: every service is real (MariaDB, Redis, `aurareels-bridge worker` processes "
            "with `--concurrency " + str(plan["concurrency"]) + "`), the platforms are the sandbox emulators as a "
            "stand-alone HTTP server reached through `AURAREELS_HOST_MAP`, and the runs own their Redis and "
            "MariaDB servers (so they can wipe, kill and restart them). Accounts are connected through the real "
            "OAuth flow; posts are scheduled through the API, half with naive site times, half with ISO `Z`. "
            f"Faults hit {plan['fault_rate']:.0%} of the platform API calls: 5xx, 429 with Retry-After, timeouts, "
            "applied-but-lost answers (502 or timeout after the effect) and expired-token answers; a worker and "
            f"everything it started is SIGKILLed every {plan['kill_every'][0]:g}-{plan['kill_every'][1]:g} s and "
            "replaced. Duplicates and lateness come from the emulators' own records of what was published "
            "(lateness: platform publication time minus the due time, including the platform's processing). "
            f"Run settings: lease {plan['lease_seconds']} s, sweep every {plan['sweep_seconds']} s, HTTP timeout "
            f"{plan['http_timeout']:g} s, transient back-off {plan['retry_delays'].replace(',', '/')} s (production: "
            "60/300/900 s), platform caps raised so that the injected faults are the only refusals.",
        ]
    notes = []
    for r in results.values():
        if not r:
            continue
        notes += [f"- {r['name']}: {note}" for note in r.get("notes", [])]
        stuck = Counter(_stuck_on(item) for item in r.get("not_final", []))
        if stuck:
            notes.append(f"- {r['name']}: where the posts that never reached a final state stopped: "
                         + "; ".join(f"{n} × {why}" for why, n in stuck.most_common()))
        if r.get("connect_failures"):
            codes = Counter(f"{f['status']} {json.loads(f['body']).get('code') if f['body'].startswith('{') else ''}"
                            for f in r["connect_failures"])
            notes.append(f"- {r['name']}: OAuth callbacks that failed and were tried again: "
                         + ", ".join(f"{k} ×{v}" for k, v in codes.items()))
        if r.get("worker_unexpected_exits"):
            notes.append(f"- {r['name']}: workers that exited on their own and were restarted: "
                         f"{r['worker_unexpected_exits']} (exit codes {r.get('worker_exit_codes')})")
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results/reliability.md")
    parser.add_argument("--mode", default="full")
    args = parser.parse_args(argv)
    text = render(args.mode)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
