"""A newcomer's first minute: `scripts/up` in a clean folder, then the walk-through it prints.

`scripts/up` runs with its state (SQLite file, generated secrets) in an empty temporary folder, on
a free port and nothing else configured. The test reads the walk-through from its output and runs
its shell lines as printed (bash, curl, python3), doing by HTTP what the newcomer does in the
browser (open the consent page, press Allow). Two changes keep it fast: the sandbox's TikTok
finishes processing at once (set through the control API before step 2), and step 3 schedules five
seconds ahead instead of a minute.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bridge.sandbox.demo_video import demo_mp4
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def up(tmp_path):
    """`scripts/up --port P` in a clean folder; yields (base URL, printed output)."""
    for tool in ("bash", "curl", "python3"):
        if not shutil.which(tool):
            pytest.fail(f"the walk-through needs {tool} on the PATH", pytrace=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AURAREELS_", "JWT_", "N8N_"))}
    env["AURAREELS_STATE_DIR"] = str(tmp_path / "state")
    out = open(tmp_path / "up.out", "w+")
    proc = subprocess.Popen([str(ROOT / "scripts" / "up"), "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                            stderr=open(tmp_path / "up.log", "w"), start_new_session=True)

    def printed():
        assert proc.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        text = (tmp_path / "up.out").read_text()
        return "The demo video plays at" in text and text

    try:
        yield f"http://127.0.0.1:{port}", wait_for(printed, timeout=180, interval=0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out.close()


def steps(output: str) -> tuple[list[str], dict[int, list[str]]]:
    """The variable lines and each numbered step's command lines of the printed walk-through."""
    lines = [line.strip() for line in output.splitlines()]
    variables = [line for line in lines if re.fullmatch(r"(BRIDGE|TOKEN)=\S+", line)]
    numbered: dict[int, list[str]] = {}
    current = None
    for line in lines:
        heading = re.match(r"# (\d)\. ", line)
        if heading:
            current = numbered.setdefault(int(heading.group(1)), [])
        elif current is not None and line and not line.startswith("The demo video"):
            current.append(line)
        elif not line:
            current = None
    return variables, numbered


def shell(variables: list[str], commands: list[str]) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(variables + commands)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, (commands, done.stdout, done.stderr)
    return done.stdout


def json_values(text: str) -> list:
    """The JSON documents printed one after another (curl adds no newline of its own)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while position < len(text.rstrip()):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def allow_in_browser(auth_url: str) -> str:
    """What the newcomer does in the browser: open the page, press Allow, follow the redirects."""
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        page = browser.get(auth_url)
        assert page.status_code == 200 and 'id="allow"' in page.text
        form = {unescape(n): unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">',
                                                                 page.text)}
        landing = browser.post(auth_url, data={**form, "decision": "allow", "sandbox_user": "creator1"})
        assert landing.status_code == 200, landing.text
        return str(landing.url), landing.text


def test_scripts_up_in_a_clean_folder_then_the_printed_walk_through_reaches_a_published_post(up):
    url, output = up
    assert output.startswith(f"AuraReels Social Bridge is up at {url}\n")
    assert httpx.get(f"{url}/health", timeout=10).json()["checks"]["database"]["ok"] is True
    variables, numbered = steps(output)
    assert [v.split("=", 1)[0] for v in variables] == ["BRIDGE", "TOKEN"] and sorted(numbered) == [1, 2, 3, 4, 5]

    # 1. connect: the printed command prints the consent page's address, on this port
    auth_url = shell(variables, numbered[1]).strip()
    assert auth_url.startswith(f"{url}/_sandbox/www.tiktok.com/") and f"127.0.0.1%3A{urlsplit(url).port}" in auth_url
    landed, page = allow_in_browser(auth_url)
    assert landed.startswith(f"{url}/dashboard/social-accounts?status=")
    if "status=pending" in landed:  # connects confirmed by the dashboard: the page shows the command
        confirm = unescape(re.search(r"<pre>(.*?)</pre>", page, re.S).group(1))
        assert json.loads(shell(variables, [confirm]))["success"] is True
    else:
        assert landed == f"{url}/dashboard/social-accounts?status=success&platform=tiktok" and "is connected" in page

    fast = {"platform": "tiktok", "processing_seconds": 0, "moderation_seconds": 0}
    assert httpx.post(f"{url}/_sandbox/control/config", json=fast, timeout=10).status_code == 200

    # 2 and 3. publish the demo video now, schedule it once more (five seconds ahead here)
    scheduled_soon = [c.replace("d.timedelta(minutes=1)", "d.timedelta(seconds=5)") for c in numbered[3]]
    assert scheduled_soon != numbered[3]
    answers = json_values(shell(variables, numbered[2] + scheduled_soon))
    assert [(a["success"], a["posts"][0]["status"]) for a in answers] == [(True, "publishing"), (True, "scheduled")]

    # 4. list the posts until both are published with their TikTok address
    def published():
        posts = json.loads(shell(variables, numbered[4]))["posts"]
        assert not [p for p in posts if p["status"] == "failed"], posts
        return len(posts) == 2 and all(p["status"] == "published" for p in posts) and posts

    posts = wait_for(published, timeout=90, interval=1)
    assert all(re.fullmatch(r"https://www\.tiktok\.com/@creator1/video/\d+", p["platform_post_url"]) for p in posts)
    assert {p["video_job_id"] for p in posts} == {"demo"}

    # 5. TikTok's own record: each post once, the demo video's bytes received in full
    record = json.loads(shell(variables, numbered[5]))["state"]["published"]
    assert sorted(item["caption"] for item in record) == ["A minute later", "Hello from AuraReels #demo"]
    assert {(item["video_size"], item["bytes_received"], item["duration"]) for item in record} == {
        (len(demo_mp4()), len(demo_mp4()), 5.0)}

    video = httpx.get(output.rsplit("The demo video plays at ", 1)[1].split()[0], timeout=10)
    assert video.headers["content-type"] == "video/mp4" and video.content == demo_mp4()


def test_the_readme_quick_start_shows_the_same_walk_through():
    from bridge.services.demo import walkthrough

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh\nBRIDGE=", 1)[1].split("```", 1)[0]
    shown = ["BRIDGE=" + block.splitlines()[0]] + [line for line in block.splitlines()[1:] if line.strip()]
    printed = [line.strip() for line in walkthrough("http://127.0.0.1:8080", "<the demo token up printed>").splitlines()
               if line.startswith("  ") and line.strip()]
    assert shown == printed
