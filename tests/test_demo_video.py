"""The demo video of `up`: a real MP4 (boxes, H.264 parameter sets, samples where the index says),
served by the sandbox media host with ranges, and accepted by every platform's limits."""
from __future__ import annotations

import struct

import httpx
import pytest

from bridge.platforms.base import PostContent
from bridge.platforms.media import MediaSource, mp4_duration
from bridge.platforms.registry import get_client
from bridge.platforms.media import SANDBOX_MEDIA_HOST
from bridge.sandbox.core import Sandbox, start_server
from bridge.sandbox.demo_video import DEMO_DURATION, DEMO_PATH, HEIGHT, WIDTH, demo_mp4, demo_url
from bridge.sandbox.linkedin import LinkedInEmulator
from bridge.sandbox.meta import media_problem
from bridge.services.demo import DEMO_JOB_ID, DEMO_USER_ID, seed_demo_video
from tests.test_browser import browser  # noqa: F401  (the headless Chromium fixture)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, tuple[int, int]]:
    """Top-level boxes of data[start:end] as type -> (payload start, payload end)."""
    found, position, end = {}, start, len(data) if end is None else end
    while position < end:
        size, kind = struct.unpack(">I4s", data[position:position + 8])
        assert size >= 8 and position + size <= end, (kind, size)
        found[kind] = (position + 8, position + size)
        position += size
    assert position == end
    return found


def child(data: bytes, parent: tuple[int, int], *path: bytes, skip: int = 0) -> tuple[int, int]:
    span = parent
    for kind in path:
        span = boxes(data, span[0] + skip, span[1])[kind]
        skip = 0
    return span


def test_the_file_is_a_fast_start_mp4_whose_index_matches_its_samples():
    data = demo_mp4()
    top = boxes(data)
    assert list(top) == [b"ftyp", b"moov", b"mdat"]  # moov first: the duration is in the first bytes
    assert data[top[b"ftyp"][0]:top[b"ftyp"][0] + 4] == b"isom"
    assert mp4_duration(data[:65536]) == DEMO_DURATION == 5.0
    trak = child(data, top[b"moov"], b"trak")
    stbl = child(data, trak, b"mdia", b"minf", b"stbl")
    tables = boxes(data, *stbl)
    stsd = tables[b"stsd"]
    avc1 = boxes(data, stsd[0] + 8, stsd[1])[b"avc1"]
    assert struct.unpack(">HH", data[avc1[0] + 24:avc1[0] + 28]) == (WIDTH, HEIGHT)
    avcc = boxes(data, avc1[0] + 78, avc1[1])[b"avcC"]
    assert data[avcc[0]:avcc[0] + 4] == bytes([1, 66, 0xC0, 30])  # Constrained Baseline, level 3.0
    sps_length = struct.unpack(">H", data[avcc[0] + 6:avcc[0] + 8])[0]
    assert data[avcc[0] + 8] & 0x1F == 7  # a sequence parameter set
    assert data[avcc[0] + 8 + sps_length + 3] & 0x1F == 8  # then a picture parameter set
    stsz = tables[b"stsz"]
    count = struct.unpack(">I", data[stsz[0] + 8:stsz[0] + 12])[0]
    sizes = struct.unpack(f">{count}I", data[stsz[0] + 12:stsz[1]])
    first = struct.unpack(">I", data[tables[b"stco"][0] + 8:tables[b"stco"][0] + 12])[0]
    assert first == top[b"mdat"][0] and sum(sizes) == top[b"mdat"][1] - top[b"mdat"][0]
    assert struct.unpack(">III", data[tables[b"stts"][0] + 4:tables[b"stts"][0] + 16]) == (1, count, 500)
    position = first
    for size in sizes:  # every sample is one length-prefixed IDR slice
        assert struct.unpack(">I", data[position:position + 4])[0] == size - 4
        assert data[position + 4] == 0x65
        position += size


def test_the_file_passes_the_size_and_duration_limits_of_every_platform():
    size = len(demo_mp4())
    assert LinkedInEmulator.defaults["min_video_bytes"] <= size <= 300_000
    assert media_problem(demo_url(), "video", {"min_duration": 3, "max_duration": 90, "max_bytes": size}) is None


def test_the_media_host_serves_it_whole_and_by_range():
    with httpx.Client(transport=httpx.WSGITransport(app=Sandbox()), base_url="https://media.sandbox.aurareels.test") as c:
        whole = c.get(demo_url())
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content == demo_mp4()
        part = c.get(demo_url(), headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == demo_mp4()[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(demo_mp4())}"
        tail = c.get(demo_url(), headers={"Range": "bytes=-1000"})
        assert tail.status_code == 206 and tail.content == demo_mp4()[-1000:]
        other = c.get("https://media.sandbox.aurareels.test/videos/other.mp4?size=5000")
        assert len(other.content) == 5000 and other.content != demo_mp4()[:5000]  # synthetic files are unchanged


def test_the_bridge_reads_its_duration_and_size_through_the_sandbox(settings):
    info = MediaSource(settings, demo_url()).probe()
    assert (info.size, info.duration_sec, info.content_type) == (len(demo_mp4()), 5.0, "video/mp4")


@pytest.mark.parametrize("platform", ["tiktok", "instagram", "facebook", "youtube", "twitter", "linkedin"])
def test_every_platform_accepts_it_before_anything_is_sent(settings, platform):
    info = MediaSource(settings, demo_url()).probe()
    # TikTok has no default audience: the creator chooses one (the walk-through sends PUBLIC)
    content = PostContent(caption="The demo video", title="Demo", video_url=demo_url(),
                          privacy_level="PUBLIC" if platform == "tiktok" else None)
    assert get_client(settings, platform).validate(content, info) == []


def test_seeding_creates_the_demo_job_of_user_1_once(rt):
    assert seed_demo_video(rt) == DEMO_JOB_ID == "demo"
    videos = rt.tables.videos
    with rt.engine.begin() as conn:
        conn.execute(videos.update().where(videos.c.job_id == "demo").values(mp4_url="https://example.com/old.mp4"))
    seed_demo_video(rt)
    with rt.engine.connect() as conn:
        rows = conn.execute(videos.select().where(videos.c.job_id == "demo")).mappings().all()
    assert [(r["wp_user_id"], r["mp4_url"]) for r in rows] == [(DEMO_USER_ID, demo_url())]


def test_chromium_plays_it_frame_by_frame(browser):  # noqa: F811
    """A real video, not a header: the browser decodes it, five seconds of 90x160, and the frame
    at 2.6 s (the sixth) shows the background colour it was drawn with."""
    server, _, base = start_server(sandbox=Sandbox())
    try:
        browser.get(f"{base}/{SANDBOX_MEDIA_HOST}{DEMO_PATH}")  # the browser's own player page
        facts = browser.execute_async_script("""
            const done = arguments[0], video = document.querySelector('video');
            const grab = () => { video.onseeked = () => setTimeout(() => {
                const canvas = document.createElement('canvas'); canvas.width = 90; canvas.height = 160;
                const ctx = canvas.getContext('2d'); ctx.drawImage(video, 0, 0);
                done([video.duration, video.videoWidth, video.videoHeight, Array.from(ctx.getImageData(5, 5, 1, 1).data)]);
              }, 200); video.currentTime = 2.6; };
            if (video.readyState >= 1) grab(); else video.onloadedmetadata = grab;
            setTimeout(() => done(['timeout', video.readyState, video.error && video.error.message]), 15000);""")
    finally:
        server.shutdown()
    duration, width, height, pixel = facts
    assert (duration, width, height) == (5, 90, 160), facts
    assert all(abs(got - want) <= 4 for got, want in zip(pixel[:3], (110, 30, 130))), pixel
