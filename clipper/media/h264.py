"""The few H.264 header fields Clipper reads: a slice's picture order count, its SPS limits and
a PPS's initial QP."""

from __future__ import annotations

from dataclasses import dataclass

#: profile_idc values whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def unescape(nal: bytes) -> bytes:
    """A NAL unit's payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


class Bits:
    """An MSB-first bit reader with the exp-Golomb codes of H.264 headers."""

    def __init__(self, data: bytes) -> None:
        self.bits, self.pos = "".join(f"{b:08b}" for b in data), 0

    def u(self, n: int) -> int:
        if self.pos + n > len(self.bits):
            raise ValueError("read past the end of the header")
        value = int(self.bits[self.pos:self.pos + n] or "0", 2)
        self.pos += n
        return value

    def ue(self) -> int:
        zeros = self.bits.index("1", self.pos) - self.pos
        if zeros > 31:
            raise ValueError("exp-Golomb code too long")
        self.pos += zeros + 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


@dataclass(frozen=True)
class SpsOrder:
    """What an SPS says about numbering pictures."""

    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int  # 0 unless poc_type is 0
    frame_mbs_only: bool
    separate_colour_plane: bool

    @property
    def max_poc_lsb(self) -> int:
        return 1 << self.log2_max_poc_lsb


def _skip_scaling_lists(r: Bits, count: int) -> None:
    for i in range(count):
        if r.u(1):  # seq_scaling_list_present_flag
            last = nxt = 8
            for _ in range(16 if i < 6 else 64):
                if nxt:
                    nxt = (last + r.se() + 256) % 256
                last = nxt or last


def sps_order(sps: bytes) -> SpsOrder | None:
    """The SPS's picture-numbering fields; None when it is not an SPS this reads."""
    if not sps or sps[0] & 0x1F != 7:
        return None
    try:
        r = Bits(unescape(sps)[1:])
        profile = r.u(8)
        r.u(16)  # constraint flags, level
        r.ue()  # sps id
        separate = False
        if profile in _HIGH_PROFILES:
            chroma = r.ue()
            if chroma == 3:
                separate = bool(r.u(1))
            r.ue(), r.ue()  # bit depths
            r.u(1)  # qpprime_y_zero_transform_bypass
            if r.u(1):
                _skip_scaling_lists(r, 12 if chroma == 3 else 8)
        log2_frame_num = r.ue() + 4
        poc_type = r.ue()
        log2_poc = 0
        if poc_type == 0:
            log2_poc = r.ue() + 4
        elif poc_type == 1:
            r.u(1)
            r.se(), r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.u(1)  # gaps_in_frame_num_value_allowed
        r.ue(), r.ue()  # picture size in macroblocks
        frame_mbs_only = bool(r.u(1))
    except ValueError:
        return None
    return SpsOrder(log2_frame_num, poc_type, log2_poc, frame_mbs_only, separate)


def slice_poc_lsb(nal: bytes, sps: SpsOrder) -> int | None:
    """A slice's pic_order_cnt_lsb (POC type 0); None for another NAL unit or POC type."""
    kind = nal[0] & 0x1F if nal else 0
    if kind not in (1, 5) or sps.poc_type != 0:
        return None
    try:
        r = Bits(unescape(nal[:64])[1:])
        r.ue(), r.ue(), r.ue()  # first_mb_in_slice, slice_type, pps id
        if sps.separate_colour_plane:
            r.u(2)
        r.u(sps.log2_max_frame_num)
        if not sps.frame_mbs_only and r.u(1):  # field_pic_flag, then bottom_field_flag
            r.u(1)
        if kind == 5:
            r.ue()  # idr_pic_id
        return r.u(sps.log2_max_poc_lsb)
    except ValueError:
        return None


def pic_init_qp(pps: bytes) -> int | None:
    """The PPS's pic_init_qp (x264 sets it from the CRF); None when it is not one this reads."""
    try:
        r = Bits(unescape(pps)[1:])
        r.ue(), r.ue()  # pps id, sps id
        r.u(2)  # entropy coding, bottom field pic order
        if r.ue() != 0:  # slice groups: not something x264 writes
            return None
        r.ue(), r.ue()  # num_ref_idx l0/l1 default
        r.u(3)  # weighted pred flag, weighted bipred idc
        return 26 + r.se()
    except ValueError:
        return None
