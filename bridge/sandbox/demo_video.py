"""The demo video: a real, playable MP4 made in pure Python (no encoder, no file on disk).

Ten frames of 90x160 (vertical 9:16), two a second, five seconds in all: each frame counts down
from 5 on a background whose colour moves, with a bar that fills. The picture is H.264 Constrained
Baseline whose macroblocks are all `I_PCM` (raw samples: the one H.264 coding that needs no
transform or entropy coder), in a fast-start MP4 (`ftyp`, `moov` with `mvhd`, then `mdat`), so the
duration sits in the first bytes as every platform's check reads it. It weighs about 230 kB: above
LinkedIn's smallest accepted video (75 KiB) and far below every platform's largest.

`demo_mp4()` returns the bytes (built once per process, in about 50 ms). The sandbox media host
serves them at `DEMO_PATH`; `demo_url()` is that address with the size and duration in its query,
which is what the emulated platforms that fetch media themselves (Instagram, Facebook's `file_url`)
judge a sandbox media URL by.
"""
from __future__ import annotations

import struct
from functools import lru_cache

from bridge.platforms.media import SANDBOX_MEDIA_HOST

WIDTH, HEIGHT = 90, 160
FPS = 2
FRAMES = 10
DEMO_DURATION = FRAMES / FPS  # seconds
DEMO_PATH = "/videos/aurareels-demo.mp4"
_CODED_WIDTH = 96  # a whole number of 16-pixel macroblocks; the SPS crops it to WIDTH
_TIMESCALE = 1000

# 3x5 pixel digits, one string of rows per digit
_DIGITS = {
    "1": ("010", "110", "010", "010", "111"), "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"), "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
}


class _Bits:
    """An H.264 RBSP bit writer (fixed-width and Exp-Golomb codes, and byte-aligned raw samples)."""

    def __init__(self):
        self.out = bytearray()
        self.acc = 0  # bits not yet making a whole byte
        self.count = 0

    def u(self, width: int, value: int) -> None:
        for shift in range(width - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                self.acc = self.count = 0

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        if self.count:
            self.u(8 - self.count, 0)

    def trailing(self) -> None:
        self.u(1, 1)
        self.align_zero()

    def raw(self, data: bytes) -> None:
        """Whole bytes, written where the writer is byte-aligned (I_PCM samples always are)."""
        assert self.count == 0
        self.out += data

    def bytes(self) -> bytes:
        assert self.count == 0
        return bytes(self.out)


def _nal(ref_idc: int, kind: int, rbsp: bytes) -> bytes:
    """A NAL unit with emulation prevention: no 0x000000-0x000003 may appear in its payload."""
    out = bytearray([(ref_idc << 5) | kind])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps() -> bytes:
    b = _Bits()
    b.u(8, 66)  # profile_idc: Baseline
    b.u(8, 0xC0)  # constraint_set0 and 1: Constrained Baseline
    b.u(8, 30)  # level 3.0 (raw samples need the bit rate)
    b.ue(0)  # seq_parameter_set_id
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(2)  # pic_order_cnt_type: output order is decoding order
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(_CODED_WIDTH // 16 - 1)
    b.ue(HEIGHT // 16 - 1)
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 1)  # frame_cropping_flag: in units of two luma columns (4:2:0)
    for offset in (0, (_CODED_WIDTH - WIDTH) // 2, 0, 0):  # left, right, top, bottom
        b.ue(offset)
    b.u(1, 0)  # vui_parameters_present_flag
    b.trailing()
    return _nal(3, 7, b.bytes())


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(1, 0)  # weighted_pred_flag
    b.u(2, 0)  # weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 0)  # deblocking_filter_control_present_flag
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    b.trailing()
    return _nal(3, 8, b.bytes())


@lru_cache(maxsize=256)
def _rgb_to_yuv(r: int, g: int, b: int) -> tuple[int, int, int]:
    """BT.601 studio range; samples stay within 1..254 (a zero sample was forbidden in I_PCM once)."""
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    cb = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    cr = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return tuple(max(1, min(254, round(v))) for v in (y, cb, cr))  # type: ignore[return-value]


def _picture(index: int) -> list[list[tuple[int, int, int]]]:
    """RGB rows of frame `index` (coded size): a moving colour, the seconds left, a filling bar."""
    shade = index * 255 // max(1, FRAMES - 1)
    background = (40 + shade // 2, 30, 200 - shade // 2)
    rows = [[background] * _CODED_WIDTH for _ in range(HEIGHT)]
    digit = _DIGITS[str(FRAMES // FPS - index // FPS)]
    scale, left, top = 10, (WIDTH - 30) // 2, 40
    for dy, line in enumerate(digit):
        for dx, on in enumerate(line):
            if on == "1":
                for y in range(top + dy * scale, top + (dy + 1) * scale):
                    for x in range(left + dx * scale, left + (dx + 1) * scale):
                        rows[y][x] = (250, 250, 250)
    filled = (index + 1) * (WIDTH - 10) // FRAMES
    for y in range(130, 140):
        for x in range(5, 5 + filled):
            rows[y][x] = (250, 200, 40)
    return rows


def _idr_slice(index: int) -> bytes:
    """One IDR picture: a slice header, then every macroblock as I_PCM (luma 16x16, then Cb and Cr 8x8)."""
    yuv = [[_rgb_to_yuv(*pixel) for pixel in row] for row in _picture(index)]
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(7)  # slice_type: I (every slice of the picture)
    b.ue(0)  # pic_parameter_set_id
    b.u(4, 0)  # frame_num (log2_max_frame_num = 4)
    b.ue(index % 2)  # idr_pic_id: two IDR pictures in a row must differ
    b.u(1, 0)  # no_output_of_prior_pics_flag
    b.u(1, 0)  # long_term_reference_flag
    b.se(0)  # slice_qp_delta
    for mb_y in range(HEIGHT // 16):
        for mb_x in range(_CODED_WIDTH // 16):
            b.ue(25)  # mb_type I_PCM
            b.align_zero()  # pcm_alignment_zero_bit
            x0, y0 = mb_x * 16, mb_y * 16
            b.raw(bytes(yuv[y0 + y][x0 + x][0] for y in range(16) for x in range(16)))
            for plane in (1, 2):
                b.raw(bytes(yuv[y0 + 2 * y][x0 + 2 * x][plane] for y in range(8) for x in range(8)))
    b.trailing()
    return _nal(3, 5, b.bytes())


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(sample_sizes: list[int], mdat_data_offset: int, sps: bytes, pps: bytes) -> bytes:
    duration = round(DEMO_DURATION * _TIMESCALE)
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, _TIMESCALE, duration),
                     struct.pack(">IH10x", 0x10000, 0x100), _MATRIX, b"\x00" * 24, struct.pack(">I", 2))
    tkhd = _full_box(b"tkhd", 0, 3, struct.pack(">III4xI8xHHH2x", 0, 0, 1, duration, 0, 0, 0), _MATRIX,
                     struct.pack(">II", WIDTH << 16, HEIGHT << 16))
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, _TIMESCALE, duration, 0x55C4, 0))  # language "und"
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\x00")
    avcc = _box(b"avcC", bytes([1, 66, 0xC0, 30, 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps,
                bytes([1]), struct.pack(">H", len(pps)), pps)
    avc1 = _box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", WIDTH, HEIGHT),
                struct.pack(">IIIH", 0x00480000, 0x00480000, 0, 1), b"\x00" * 32, struct.pack(">Hh", 0x18, -1), avcc)
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, len(sample_sizes), _TIMESCALE // FPS)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sample_sizes), 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sample_sizes)), struct.pack(f">{len(sample_sizes)}I",
                                                                                       *sample_sizes)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, mdat_data_offset)),
    )
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    minf = _box(b"minf", _full_box(b"vmhd", 0, 1, b"\x00" * 8), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)


@lru_cache(maxsize=1)
def demo_mp4() -> bytes:
    """The demo video's bytes (about 230 kB; built in about a second, once per process)."""
    sps, pps = _sps(), _pps()
    samples = [struct.pack(">I", len(nal)) + nal for nal in (_idr_slice(i) for i in range(FRAMES))]
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    sizes = [len(s) for s in samples]
    # the moov's size does not depend on the offset it records, so measure it once with a placeholder
    head = len(ftyp) + len(_moov(sizes, 0, sps, pps)) + 8
    return ftyp + _moov(sizes, head, sps, pps) + _box(b"mdat", *samples)


def demo_url() -> str:
    """The demo video's address on the sandbox media host."""
    return f"https://{SANDBOX_MEDIA_HOST}{DEMO_PATH}?size={len(demo_mp4())}&duration={DEMO_DURATION:g}"
