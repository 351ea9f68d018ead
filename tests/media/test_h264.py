"""The H.264 header fields read for open-GOP cuts, and the head split they lead to (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clipper.media.cut import head_splits
from clipper.media.h264 import Bits, slice_poc_lsb, sps_order, unescape

# The SPS x264 (through ffmpeg) wrote for a 640x360 25 fps High-profile open-GOP stream
# (open-gop=1:keyint=60), from its avcC box.
SPS = bytes.fromhex("6764001eacd940a02ff97011000003000100000300320f162d96")


def _bits(fields: list[tuple[str, int, int]]) -> bytes:
    """Pack (kind, value, width) fields: "u" fixed width, "ue" exp-Golomb; pad with 1 then 0s."""
    out = ""
    for kind, value, width in fields:
        if kind == "u":
            out += format(value, f"0{width}b")
        else:
            code = format(value + 1, "b")
            out += "0" * (len(code) - 1) + code
    out += "1"
    out += "0" * (-len(out) % 8)
    return int(out, 2).to_bytes(len(out) // 8, "big")


def test_the_sps_of_an_x264_stream_gives_its_picture_numbering() -> None:
    order = sps_order(SPS)
    assert order is not None
    assert (order.poc_type, order.max_poc_lsb, order.frame_mbs_only) == (0, 64, True)
    assert sps_order(b"\x68\xee\x3c\x80") is None  # a PPS
    assert sps_order(b"") is None


def test_a_slice_header_gives_its_poc_lsb() -> None:
    order = sps_order(SPS)
    assert order is not None
    fields = [("ue", 0, 0), ("ue", 7, 0), ("ue", 0, 0),  # first mb, I slice, pps 0
              ("u", 5, order.log2_max_frame_num), ("u", 56, order.log2_max_poc_lsb)]
    assert slice_poc_lsb(b"\x01" + _bits(fields), order) == 56  # non-IDR, nal_ref_idc 0
    idr = fields[:4] + [("ue", 3, 0), ("u", 12, order.log2_max_poc_lsb)]
    assert slice_poc_lsb(b"\x65" + _bits(idr), order) == 12
    assert slice_poc_lsb(SPS, order) is None  # not a slice


def test_bits_read_exp_golomb_codes_and_refuse_to_read_past_the_end() -> None:
    r = Bits(_bits([("ue", 0, 0), ("ue", 4, 0), ("ue", 1, 0), ("u", 3, 2)]))
    assert (r.ue(), r.ue(), r.se(), r.u(2)) == (0, 4, 1, 3)
    with pytest.raises(ValueError):
        Bits(b"\x00").ue()
    assert unescape(b"\x00\x00\x03\x01") == b"\x00\x00\x01"


def test_head_splits_follow_the_decoder_s_rule() -> None:
    # Measured (tests/media/test_cut.py, an x264 open-GOP source, MaxPicOrderCntLsb 64): a head
    # of 25 frames before lsb 56 showed in order; one of 37 before lsb 48 lost frames.
    assert head_splits(25, 56, 64)[0] == 25
    splits = head_splits(37, 48, 64)
    assert 37 not in splits and len(splits) == 1
    d = (48 - 2 * (splits[0] - 1)) % 64
    assert 8 <= d <= 24


@given(head=st.integers(1, 120), lsb=st.integers(0, 255), log2=st.integers(4, 8))
def test_each_split_is_a_part_of_the_head_and_the_whole_one_comes_first(
        head: int, lsb: int, log2: int) -> None:
    max_lsb = 1 << log2
    lsb %= max_lsb
    splits = head_splits(head, lsb, max_lsb)
    assert all(1 <= n <= head for n in splits) and len(set(splits)) == len(splits)
    assert (head in splits) == (0 < (lsb - 2 * (head - 1)) % max_lsb < max_lsb // 2)
    if head in splits:
        assert splits[0] == head
