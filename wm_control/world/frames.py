"""Camera frames: ``sensor_msgs/Image`` / ``CompressedImage`` -> RGB, crop and resize to the model's size.

Pure functions (numpy + OpenCV), no ROS graph: :mod:`wm_control.ros.nodes.camera_ingest` uses them on
every frame, tests and the simulator use :func:`encode_compressed` / :func:`make_compressed_image`.
Everything that cannot be decoded raises :class:`~wm_control.messages.convert.ConversionError` saying why.

Encodings (``sensor_msgs/image_encodings.hpp`` names):

* ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``: channels reordered or repeated;
* ``mono16``: the high byte (``v >> 8``, as OpenCV reduces 16-bit images to 8 bit), grey to RGB;
* ``yuv422`` (ROS's name for UYVY; also ``uyvy``) and ``yuv422_yuy2`` / ``yuyv`` (YUYV): 4:2:2,
  2 bytes per pixel, even width; BT.601 video range (Y 16..235), as ``cv2.COLOR_YUV2RGB_UYVY`` /
  ``_YUYV`` convert.

Compressed formats as ``image_transport``'s compressed plugin writes them: ``"jpeg"``, ``"png"``
(old style) or ``"<encoding>; jpeg compressed <enc>"`` / ``"<encoding>; png compressed <enc>"``.
The payload is an ordinary JPEG/PNG (colour stored as BGR by ``cv::imencode``), so it is decoded with
``cv2.imdecode`` to BGR and turned to RGB; a 16-bit PNG is reduced to 8 bit. ``compressedDepth``
(depth images with a float header) is not a camera frame and is refused.

Before anything is decoded, the size is read from the header (PNG ``IHDR``, JPEG ``SOFn``:
:func:`png_header`, :func:`jpeg_header`) and an image of more than ``max_pixels`` is refused with
:class:`ImageTooLarge` (a 300 KB PNG can say 10000 x 10000 and take 300 MB to decode); a raw
``Image`` is held to the same limit. The decoded array must have the header's size.

A JPEG must be complete: libjpeg decodes a truncated stream without complaint when an end marker
follows (the rest of the image comes out grey), so :func:`check_jpeg` walks the markers and segment
lengths, and for sequential Huffman JPEGs (baseline and extended: what cameras, ``cv::imencode`` and
image_transport send) follows the entropy-coded data of every scan through its Huffman tables, MCU by
MCU and restart interval by interval, and refuses a scan whose data ends before its last MCU. Other
JPEG processes (progressive, lossless, arithmetic-coded, hierarchical) cannot be checked that way and
are refused while ``verify_jpeg`` is on.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from wm_control.messages import convert as cv
from wm_control.messages.convert import ConversionError, Make

#: 4:2:2 encodings -> cv2 conversion code (BT.601, video range)
YUV422_ENCODINGS: dict[str, int] = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,  # ROS: "yuv422" is UYVY (U0 Y0 V0 Y1)
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,  # Y0 U0 Y1 V0
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}
#: every ``sensor_msgs/Image`` encoding :func:`image_msg_to_rgb` accepts
SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", *YUV422_ENCODINGS)
COMPRESSIONS = ("jpeg", "png")


#: a message's ``uint8[]`` field (numpy array, bytes, array.array or list) as a 1-D uint8 array
_bytes = cv.uint8_data


# ------------------------------------------------------------------------------------------
# Limits and headers: what an image will take, read before it is decoded
# ------------------------------------------------------------------------------------------
#: default pixel limit (width * height) for every decoder here: 16.8 Mpx, 4096 x 4096 (a 4K UHD frame is 8.3 Mpx)
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageTooLarge(ConversionError):
    """An image over the pixel limit, refused from its header before it is decoded."""


def check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Raise :class:`ImageTooLarge` when ``width * height`` is over ``max_pixels`` (None or 0: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise ImageTooLarge(f"{what}: {width}x{height} = {width * height} pixels is over the limit of "
                            f"{max_pixels} pixels")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's ``IHDR`` chunk, which must come first (as libpng requires); nothing
    is decompressed."""
    if data[:8] != PNG_SIGNATURE:
        raise ConversionError("PNG: no PNG signature")
    if len(data) < 33:
        raise ConversionError(f"truncated PNG ({len(data)} bytes, no complete IHDR chunk)")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ConversionError(f"corrupt png: the first chunk is {kind!r} of {length} bytes, not a 13-byte IHDR")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0 or width > 2**31 - 1 or height > 2**31 - 1:
        raise ConversionError(f"corrupt png: IHDR size {width}x{height}")
    return width, height


#: a marker that ends entropy-coded data: 0xFF then neither 0x00 (a stuffed 0xFF), RSTn (0xD0-0xD7,
#: inside the scan) nor 0xFF (a fill byte before the marker)
_END_OF_ENTROPY = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_RESTART = re.compile(rb"\xff+([\xd0-\xd7])")
#: start-of-frame markers: the JPEG process each one means
_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
        0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical", 0xC9: "arithmetic",
        0xCA: "arithmetic", 0xCB: "arithmetic", 0xCD: "arithmetic", 0xCE: "arithmetic", 0xCF: "arithmetic"}
_SEQUENTIAL_HUFFMAN = ("baseline", "extended")
#: the Huffman tables of ITU T.81 Annex K.3 (counts of codes of length 1..16, then the symbols), which
#: libjpeg uses for DC/AC tables 0 and 1 when a stream defines none (Motion-JPEG frames from webcams)
_STD_HUFFMAN = {
    (0, 0): bytes.fromhex("00010501010101010100000000000000000102030405060708090a0b"),
    (0, 1): bytes.fromhex("00030101010101010101010000000000000102030405060708090a0b"),
    (1, 0): bytes.fromhex(
        "0002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a63646566676869"
        "6a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5"
        "c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"),
    (1, 1): bytes.fromhex(
        "00020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768"
        "696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"),
}
_MAX_JPEG_MARKERS = 1024  # segments in one stream (a real one has ~10; ICC profiles split in many APP2 stay far below)
_MAX_JPEG_SCANS = 64


@dataclass(frozen=True)
class JpegHeader:
    """What :func:`jpeg_header` / :func:`check_jpeg` read from a JPEG without decoding it."""

    width: int
    height: int
    components: int
    process: str  # 'baseline', 'extended', 'progressive', 'lossless', 'hierarchical', 'arithmetic'
    precision: int
    scans: int = 0  # check_jpeg: scans followed to the end marker
    verified: bool = False  # check_jpeg: every scan's entropy-coded data followed MCU by MCU to its end


def _huffman_codes(spec: bytes) -> list[tuple[int, int, int]]:
    """(length, code, symbol) of a DHT table (16 counts + symbols), canonical as T.81 Annex C builds them."""
    counts, symbols = spec[:16], spec[16:]
    if sum(counts) != len(symbols) or not symbols:
        raise ConversionError("corrupt jpeg: Huffman table with a wrong number of symbols")
    out, code, i = [], 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            out.append((length, code, symbols[i]))
            code, i = code + 1, i + 1
        if code >= 1 << length:  # as libjpeg: the codes fit their lengths, and none is all ones
            raise ConversionError("corrupt jpeg: Huffman table with more codes than fit their lengths")
        code <<= 1
    return out


def _code_windows(spec: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Code length and symbol (uint8) of the code that starts each 16-bit window (length 0: no code does).

    Canonical codes come in increasing order, so their windows are consecutive runs of 2**(16 - length).
    """
    _huffman_codes(spec)  # validates: the codes fit their lengths, so the runs fit in 2**16
    lengths = np.repeat(np.arange(1, 17, dtype=np.uint8), np.frombuffer(spec[:16], np.uint8))
    span = 1 << (16 - lengths.astype(np.int64))
    total = int(span.sum())
    clen, csym = np.zeros(1 << 16, np.uint8), np.zeros(1 << 16, np.uint8)
    clen[:total] = np.repeat(lengths, span)
    csym[:total] = np.repeat(np.frombuffer(spec[16:], np.uint8), span)
    return clen, csym


@functools.lru_cache(maxsize=32)  # 64 KB each
def _dc_table(spec: bytes) -> bytes:
    """For every 16-bit window: bits taken by the DC symbol that starts it (code + extra bits), 0 if none."""
    clen, csym = _code_windows(spec)
    # a difference category is 0..15; a larger one is corrupt (libjpeg refuses the table)
    return np.where((clen > 0) & (csym <= 15), clen + csym, 0).astype(np.uint8).tobytes()


def _ac_steps(clen: np.ndarray, csym: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is EOB, bits taken with the extra bits (0: no code), how far the coefficient index moves: run + 1,
    16 for ZRL, 64 for EOB; 0: no code) of the AC symbols that start each window."""
    run, size = csym >> 4, csym & 15
    eob = (size == 0) & (run != 15)  # libjpeg ends the block on any zero-size symbol but ZRL
    valid = clen > 0
    kinc = np.where(eob, 64, np.where(size == 0, 16, run + 1)).astype(np.uint8)
    return eob, np.where(valid, clen + size, 0).astype(np.uint8), np.where(valid, kinc, 0).astype(np.uint8)


_NEVER = b"\xff" * (1 << 16)


@functools.lru_cache(maxsize=8)  # 128 KB each
def _ac_single(spec: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """:func:`_ac_table` with one symbol a step (cheap to build: for tables seen once)."""
    _, adv1, k1 = _ac_steps(*_code_windows(spec))
    a, k = adv1.tobytes(), k1.tobytes()
    return a, k, a, _NEVER, k


@functools.lru_cache(maxsize=16)  # 320 KB each
def _ac_table(spec: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """Lookup tables over every 16-bit window of an AC table, for :func:`_walk_interval`.

    ``adv1, k1``: the one symbol that starts the window (bits it takes with its extra bits; how far it
    moves the coefficient index: run + 1, 16 for ZRL, 64 for EOB; adv1 0: not a code). ``adv, kpre,
    ktot``: as many symbols as have their code inside the window, taken at once (bits; coefficient
    index before the last one, which must still be < 64 for the group to belong to one block; index
    moved in all, +64 when the group ends with EOB). ``kpre`` 255: take the first symbol alone.
    """
    clen, csym = _code_windows(spec)
    eob, adv1, k1 = _ac_steps(clen, csym)
    valid = clen > 0
    used = adv1.copy()  # bits the group takes so far
    kpre = np.where(valid, 0, 255).astype(np.uint8)
    ktot = k1.astype(np.int16)
    idx = np.nonzero(valid & ~eob & (used < 16))[0]  # windows whose group may take another symbol
    while idx.size:
        u = used[idx]
        nxt = (idx << u) & 0xFFFF  # bits after the window come in as zeros: a code is real only if it fits
        nl = clen[nxt]
        fits = (nl > 0) & (u + nl <= 16)
        idx, u, nl, nxt = idx[fits], u[fits], nl[fits], nxt[fits]
        kpre[idx] = ktot[idx]
        ktot[idx] += k1[nxt]
        used[idx] = u + adv1[nxt]
        idx = idx[~eob[nxt] & (used[idx] < 16)]
    ktot8 = np.minimum(ktot, 255).astype(np.uint8)
    return adv1.tobytes(), k1.tobytes(), used.tobytes(), kpre.tobytes(), ktot8.tobytes()


_AC_SEEN: set[bytes] = {_STD_HUFFMAN[(1, 0)], _STD_HUFFMAN[(1, 1)]}


def _ac_lookup(spec: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The AC lookup tables of ``spec``: the grouped ones (a few ms to build) for a table seen before, the
    one-symbol ones for a new table (a stream with optimised tables brings new ones with every frame)."""
    if spec in _AC_SEEN:
        return _ac_table(spec)
    if len(_AC_SEEN) > 1024:
        _AC_SEEN.clear()
        _AC_SEEN.update((_STD_HUFFMAN[(1, 0)], _STD_HUFFMAN[(1, 1)]))
    _AC_SEEN.add(spec)
    return _ac_single(spec)


def _walk_interval(seg: bytes, blocks: list[tuple[bytes, tuple[bytes, ...]]], n_mcus: int) -> int:
    """Bits the MCUs of one restart interval take in ``seg`` (unstuffed); -1 when it runs out or a code is
    not in its table."""
    nbits = 8 * len(seg)
    a = np.frombuffer(seg + b"\xff\xff\xff\xff", np.uint8).astype(np.uint32)
    w = ((a[:-2] << 16) | (a[1:-1] << 8) | a[2:]).tolist()  # w[i]: the 24 bits from byte i
    pos = 0
    try:
        for _ in range(n_mcus):
            for dc, (adv1, k1, adv, kpre, ktot) in blocks:
                d = dc[(w[pos >> 3] >> (8 - (pos & 7))) & 0xFFFF]
                if not d:
                    return -1
                pos += d
                k = 1
                while k < 64:
                    v = (w[pos >> 3] >> (8 - (pos & 7))) & 0xFFFF
                    if k + kpre[v] < 64:
                        pos += adv[v]
                        k += ktot[v]
                    else:
                        d = adv1[v]
                        if not d:
                            return -1
                        pos += d
                        k += k1[v]
            if pos > nbits:
                return -1
    except IndexError:  # ran far past the end of the data
        return -1
    return pos


def _walk_scan(ecs: bytes, blocks: list[tuple[bytes, tuple[bytes, ...]]], n_mcus: int, restart: int) -> str:
    """Why a sequential Huffman scan's entropy-coded data ``ecs`` is incomplete or corrupt; '' when it holds
    all ``n_mcus`` MCUs (``restart``: MCUs per restart interval, 0 for none)."""
    if restart:
        parts = _RESTART.split(ecs)  # data, rst digit, data, ...
        segs, rst = parts[0::2], parts[1::2]
        want = -(-n_mcus // restart)
        if len(segs) == want + 1 and not segs[-1].strip(b"\xff"):  # a restart marker after the last interval
            segs, rst = segs[:-1], rst[:-1]
        if len(segs) != want:
            return f"{len(segs)} restart intervals where {n_mcus} MCUs need {want}"
        if any(r[0] - 0xD0 != i % 8 for i, r in enumerate(rst)):
            return "restart markers out of sequence"
        counts = [restart] * (want - 1) + [n_mcus - restart * (want - 1)]
    else:
        segs, counts = [ecs], [n_mcus]
    for i, (seg, count) in enumerate(zip(segs, counts)):
        seg = seg.rstrip(b"\xff")  # fill bytes before the next marker
        if b"\xff" in seg.replace(b"\xff\x00", b""):
            return "a 0xFF byte that is not a stuffed 0xFF (a restart marker without a restart interval?)"
        seg = seg.replace(b"\xff\x00", b"\xff")
        if _walk_interval(seg, blocks, count) < 0:
            where = f" in restart interval {i + 1} of {len(segs)}" if restart else ""
            return f"the entropy-coded data ends before its last MCU{where}"
    return ""


def jpeg_header(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> JpegHeader:
    """Size and process from a JPEG's frame header (``SOFn``), reading only the markers before it.

    Raises :class:`ImageTooLarge` over ``max_pixels``, :class:`ConversionError` on a malformed header.
    """
    return _parse_jpeg(data, max_pixels, verify=False, whole=False)


def check_jpeg(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, verify: bool = True) -> JpegHeader:
    """Walk a whole JPEG from SOI to EOI and refuse what libjpeg would decode without its data.

    Every segment must lie inside the data, the frame header come before the scans and be within
    ``max_pixels`` (checked as soon as it is read), every scan's entropy-coded data end in a marker and
    the stream in EOI (bytes after EOI are ignored, as decoders do). With ``verify`` a sequential
    Huffman JPEG's scans are followed through their Huffman tables: each must hold all its MCUs (the
    exact test of a truncated stream with an end marker appended); other processes are refused
    (``verify`` False: accepted on the structure alone).
    """
    return _parse_jpeg(data, max_pixels, verify=verify, whole=True)


def _parse_jpeg(data: bytes, max_pixels: int | None, verify: bool, whole: bool) -> JpegHeader:
    n = len(data)
    if data[:2] != b"\xff\xd8":
        raise ConversionError("JPEG: no start-of-image marker")
    pos, markers, scans = 2, 0, 0
    header: JpegHeader | None = None
    comps: dict[int, tuple[int, int]] = {}  # component id -> (H, V) sampling factors
    tables: dict[tuple[int, int], bytes] = dict(_STD_HUFFMAN)
    restart = 0
    scanned: set[int] = set()
    while True:
        if pos >= n:
            raise ConversionError(f"truncated JPEG ({n} bytes, no end-of-image marker)")
        if data[pos] != 0xFF:
            raise ConversionError(f"corrupt jpeg: byte 0x{data[pos]:02x} at offset {pos} where a marker belongs")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise ConversionError(f"truncated JPEG ({n} bytes, no end-of-image marker)")
        m = data[pos]
        pos += 1
        markers += 1
        if markers > _MAX_JPEG_MARKERS:
            raise ConversionError(f"corrupt jpeg: more than {_MAX_JPEG_MARKERS} markers")
        if m == 0xD9:  # EOI
            break
        if m == 0xD8:
            raise ConversionError("corrupt jpeg: a second start-of-image marker")
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # TEM, RSTn: no length (outside a scan they mean nothing)
            continue
        if pos + 2 > n:
            raise ConversionError(f"truncated JPEG ({n} bytes, cut in the 0x{m:02x} marker's length)")
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > n:
            raise ConversionError(f"truncated JPEG ({n} bytes; the 0x{m:02x} segment at offset {pos - 2} "
                                  f"says {length} bytes)")
        seg = data[pos + 2:pos + length]
        pos += length
        if m in _SOF:
            if header is not None:
                raise ConversionError("corrupt jpeg: two frame headers")
            if len(seg) < 6 or len(seg) != 6 + 3 * seg[5] or not 1 <= seg[5] <= 4:
                raise ConversionError("corrupt jpeg: malformed frame header")
            precision, height, width, nf = seg[0], (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
            if width == 0 or height == 0:
                raise ConversionError(f"corrupt jpeg: frame size {width}x{height} (DNL is not supported)")
            check_pixels(width, height, max_pixels, "JPEG")
            for j in range(nf):
                cid, hv = seg[6 + 3 * j], seg[7 + 3 * j]
                h, v = hv >> 4, hv & 15
                if not (1 <= h <= 4 and 1 <= v <= 4) or cid in comps:
                    raise ConversionError("corrupt jpeg: bad component in the frame header")
                comps[cid] = (h, v)
            header = JpegHeader(width, height, nf, _SOF[m], precision)
            if not whole:
                return header
            if verify and header.process not in _SEQUENTIAL_HUFFMAN:
                raise ConversionError(f"JPEG: {header.process} JPEG (SOF 0x{m:02x}) is not accepted: only "
                                      "sequential Huffman (baseline) JPEGs can be checked complete")
            if header.process in _SEQUENTIAL_HUFFMAN and precision not in (8, 12):
                raise ConversionError(f"corrupt jpeg: {precision}-bit samples")
        elif m == 0xC4:  # DHT: one or more tables
            i = 0
            while i < len(seg):
                if i + 17 > len(seg):
                    raise ConversionError("corrupt jpeg: malformed Huffman table segment")
                cls_id, total = seg[i], sum(seg[i + 1:i + 17])
                if cls_id >> 4 > 1 or cls_id & 15 > 3 or i + 17 + total > len(seg):
                    raise ConversionError("corrupt jpeg: malformed Huffman table segment")
                spec = bytes(seg[i + 1:i + 17 + total])
                _huffman_codes(spec)  # validates
                tables[(cls_id >> 4, cls_id & 15)] = spec
                i += 17 + total
        elif m == 0xDD:  # DRI
            if len(seg) != 2:
                raise ConversionError("corrupt jpeg: malformed restart interval segment")
            restart = (seg[0] << 8) | seg[1]
        elif m == 0xDA:  # SOS, then entropy-coded data up to the next marker
            if header is None:
                raise ConversionError("corrupt jpeg: a scan before the frame header")
            scans += 1
            if scans > _MAX_JPEG_SCANS:
                raise ConversionError(f"corrupt jpeg: more than {_MAX_JPEG_SCANS} scans")
            if not seg or len(seg) != 4 + 2 * seg[0] or not 1 <= seg[0] <= 4:
                raise ConversionError("corrupt jpeg: malformed scan header")
            ns = seg[0]
            ids = [seg[1 + 2 * j] for j in range(ns)]
            if any(c not in comps for c in ids) or len(set(ids)) != ns:
                raise ConversionError("corrupt jpeg: a scan of a component the frame does not have")
            end = _END_OF_ENTROPY.search(data, pos)
            if end is None:
                raise ConversionError(f"truncated JPEG ({n} bytes; scan {scans} has no marker after its data)")
            if verify and header.process in _SEQUENTIAL_HUFFMAN:
                ss, se, ahal = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns]
                if (ss, se, ahal) != (0, 63, 0):
                    raise ConversionError("corrupt jpeg: a sequential scan with a spectral selection")
                if scanned & set(ids):
                    raise ConversionError("corrupt jpeg: a component in two sequential scans")
                scanned |= set(ids)
                why = _walk_scan(data[pos:end.start()], _scan_blocks(header, comps, tables, seg, ids),
                                 _scan_mcus(header, comps, ids), restart)
                if why:
                    raise ConversionError(f"truncated or corrupt JPEG ({n} bytes): scan {scans}: {why}")
            pos = end.start()
    if header is None or scans == 0:
        raise ConversionError("corrupt jpeg: no frame header or no scan before the end-of-image marker")
    verified = verify and header.process in _SEQUENTIAL_HUFFMAN
    if verified and scanned != set(comps):
        raise ConversionError("truncated JPEG: a component without a scan before the end-of-image marker")
    return JpegHeader(header.width, header.height, header.components, header.process, header.precision,
                      scans, verified)


def _scan_blocks(header: JpegHeader, comps: dict[int, tuple[int, int]], tables: dict[tuple[int, int], bytes],
                 seg: bytes, ids: list[int]) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """(DC table, AC tables) for every block of one MCU of a sequential scan, in decoding order."""
    blocks: list[tuple[bytes, tuple[bytes, ...]]] = []
    looked_up: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...]]] = {}  # once per scan: _ac_lookup counts
    for j, cid in enumerate(ids):
        td, ta = seg[2 + 2 * j] >> 4, seg[2 + 2 * j] & 15
        limit = 1 if header.process == "baseline" else 3
        if td > limit or ta > limit or (0, td) not in tables or (1, ta) not in tables:
            raise ConversionError(f"corrupt jpeg: a scan uses Huffman table DC {td} / AC {ta}, not defined")
        if (td, ta) not in looked_up:
            looked_up[(td, ta)] = (_dc_table(tables[(0, td)]), _ac_lookup(tables[(1, ta)]))
        h, v = comps[cid]
        blocks += [looked_up[(td, ta)]] * (h * v if len(ids) > 1 else 1)
    if len(blocks) > 10:
        raise ConversionError(f"corrupt jpeg: {len(blocks)} blocks in an MCU (at most 10)")
    return blocks


def _scan_mcus(header: JpegHeader, comps: dict[int, tuple[int, int]], ids: list[int]) -> int:
    """MCUs in a scan: interleaved, whole MCUs of the largest sampling factors; one component, its blocks."""
    hmax = max(h for h, _ in comps.values())
    vmax = max(v for _, v in comps.values())
    if len(ids) > 1:
        return -(-header.width // (8 * hmax)) * -(-header.height // (8 * vmax))
    h, v = comps[ids[0]]
    cw, ch = -(-header.width * h // hmax), -(-header.height * v // vmax)  # the component's own size
    return -(-cw // 8) * -(-ch // 8)


# ------------------------------------------------------------------------------------------
# sensor_msgs/Image
# ------------------------------------------------------------------------------------------
def yuv422_to_rgb(msg: Any) -> np.ndarray:
    """A 4:2:2 ``Image`` (``yuv422``/``uyvy`` or ``yuv422_yuy2``/``yuyv``) as (H, W, 3) uint8 RGB."""
    enc = msg.encoding
    code = YUV422_ENCODINGS.get(enc)
    if code is None:
        raise ConversionError(f"Image: {enc!r} is not a 4:2:2 YUV encoding")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError(f"Image: empty size {w}x{h}")
    if w % 2:
        raise ConversionError(f"Image: {enc} needs an even width (2 pixels share U and V), got {w}")
    if step < 2 * w:
        raise ConversionError(f"Image: step {step} < width*2 bytes = {2 * w} for {enc}")
    data = _bytes(msg.data)
    if data.size != h * step:
        raise ConversionError(f"Image: data has {data.size} bytes, expected height*step = {h}*{step} = {h * step}")
    packed = np.ascontiguousarray(data.reshape(h, step)[:, : 2 * w]).reshape(h, w, 2)
    return cv2.cvtColor(packed, code)


def image_msg_to_rgb(msg: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A ``sensor_msgs/Image`` in any :data:`SUPPORTED_ENCODINGS` as contiguous (H, W, 3) uint8 RGB.

    The one ``Image`` decoder. Over ``max_pixels``
    (width * height; None: no limit) it raises :class:`ImageTooLarge` before touching the data;
    sizes, step and data length are checked against each other (:func:`~wm_control.messages.convert.image_to_array`,
    :func:`yuv422_to_rgb`).
    """
    check_pixels(int(msg.width), int(msg.height), max_pixels, "Image")
    enc = msg.encoding
    if enc in YUV422_ENCODINGS:
        return yuv422_to_rgb(msg)
    if enc not in cv.IMAGE_ENCODINGS:
        raise ConversionError(f"Image: unsupported encoding {enc!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    arr = cv.image_to_array(msg)  # validates sizes, step, data length and byte order
    if enc == "mono16":
        arr = (arr >> 8).astype(np.uint8)
    if enc in ("mono8", "mono16"):
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if enc == "rgb8":
        return np.ascontiguousarray(arr)
    if enc == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if enc == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    raise ConversionError(f"Image: cannot convert {enc!r} to rgb8")  # an encoding added to IMAGE_ENCODINGS only


# ------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# ------------------------------------------------------------------------------------------
def compression_of(fmt: str) -> str:
    """``'jpeg'`` or ``'png'`` from an image_transport format string (``''``: unknown, sniff the bytes)."""
    f = fmt.strip().lower()
    if "compresseddepth" in f:
        raise ConversionError(f"CompressedImage: format {fmt!r} is a compressedDepth image, not a camera frame")
    if ";" in f:  # "<orig encoding>; <jpeg|png> compressed <encoding>"
        f = f.split(";", 1)[1].strip()
    word = f.split()[0] if f else ""
    word = {"jpg": "jpeg"}.get(word, word)
    if word and word not in COMPRESSIONS:
        raise ConversionError(f"CompressedImage: unsupported format {fmt!r}; expected jpeg or png "
                              "(e.g. 'jpeg' or 'rgb8; jpeg compressed bgr8')")
    return word


def compressed_to_rgb(msg: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS, verify_jpeg: bool = True) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as contiguous (H, W, 3) uint8 RGB.

    The size comes from the header first: over ``max_pixels`` (None: no limit) it raises
    :class:`ImageTooLarge` without decoding. A JPEG is walked whole by :func:`check_jpeg` (with
    ``verify_jpeg``, its scans to their last MCU); a PNG must end in IEND (libpng refuses the rest).
    The decoded image must have the header's size.
    """
    kind = compression_of(msg.format)
    data = _bytes(msg.data)
    if data.size == 0:
        raise ConversionError("CompressedImage: no data")
    head = data[:8].tobytes()
    sniffed = "jpeg" if head[:2] == b"\xff\xd8" else "png" if head == PNG_SIGNATURE else ""
    if not sniffed:
        raise ConversionError(f"CompressedImage: data ({data.size} bytes, starting {head.hex()}) is neither "
                              f"JPEG nor PNG (format {msg.format!r})")
    if kind and sniffed != kind:
        raise ConversionError(f"CompressedImage: format says {kind} but the data is {sniffed}")
    raw = data.tobytes()
    if sniffed == "jpeg":
        # a truncated stream still decodes (the rest filled grey), even with an end marker appended
        jpeg = check_jpeg(raw, max_pixels, verify=verify_jpeg)
        width, height = jpeg.width, jpeg.height
    else:
        width, height = png_header(raw)
        check_pixels(width, height, max_pixels, "PNG")
        if raw.rfind(b"IEND") < 8:
            raise ConversionError(f"CompressedImage: truncated PNG ({data.size} bytes, no IEND chunk)")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ConversionError(f"CompressedImage: cannot decode {sniffed}: {exc}") from None
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
        raise ConversionError(f"CompressedImage: corrupt {sniffed} data ({data.size} bytes)")
    if bgr.shape[:2] not in ((height, width), (width, height)):  # (w, h): turned by its EXIF orientation
        raise ConversionError(f"CompressedImage: decoded {sniffed} is {bgr.shape[1]}x{bgr.shape[0]}, its header "
                              f"says {width}x{height}")
    if bgr.dtype != np.uint8:  # not produced by IMREAD_COLOR today; keep the contract anyway
        bgr = (bgr >> 8).astype(np.uint8) if bgr.dtype == np.uint16 else bgr.astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def msg_to_rgb(msg: Any) -> np.ndarray:
    """An ``Image`` or a ``CompressedImage`` (told apart by their fields) as (H, W, 3) uint8 RGB."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb(msg)
    return image_msg_to_rgb(msg)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """(format string, bytes) of an RGB image compressed as image_transport's compressed plugin does.

    ``quality`` is the JPEG quality (1..100); for PNG it is ignored (lossless, fast level 3).
    """
    rgb = _check_rgb(rgb, "encode_compressed")
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        raise ValueError(f"format must be 'jpeg' or 'png', not {fmt!r}")
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConversionError(f"encode_compressed: OpenCV could not encode {fmt}")
    return f"rgb8; {fmt} compressed bgr8", buf.tobytes()


def make_compressed_image(make: Make, t: float, rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90,
                          frame_id: str = "camera") -> Any:
    """A ``sensor_msgs/CompressedImage`` stamped ``t`` (``make`` is ``node.msg``)."""
    format_string, data = encode_compressed(rgb, fmt, quality)
    return make("sensor_msgs/msg/CompressedImage", header=cv.header(make, t, frame_id), format=format_string,
                data=np.frombuffer(data, dtype=np.uint8).copy())


# ------------------------------------------------------------------------------------------
# Model-resolution frames
# ------------------------------------------------------------------------------------------
@dataclass
class FrameSpec:
    """What the model wants: ``width`` x ``height``, from an optional ``crop`` of the source.

    ``crop`` is ``(x, y, w, h)`` in source pixels, applied before the resize. ``interpolation``
    ``None`` picks ``cv2.INTER_AREA`` when shrinking (in both directions) and ``cv2.INTER_LINEAR``
    otherwise. ``layout`` is the channel order of the result: ``'rgb'`` or ``'bgr'``.
    """

    width: int
    height: int
    crop: tuple[int, int, int, int] | None = None
    interpolation: int | None = None
    layout: str = "rgb"

    def __post_init__(self) -> None:
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"FrameSpec: width and height must be > 0, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)
        if self.crop is not None:
            if len(self.crop) == 0:
                self.crop = None
            elif len(self.crop) != 4:
                raise ValueError(f"FrameSpec: crop must be [x, y, w, h], got {list(self.crop)}")
            else:
                x, y, w, h = (int(v) for v in self.crop)
                if x < 0 or y < 0 or w <= 0 or h <= 0:
                    raise ValueError(f"FrameSpec: crop needs x, y >= 0 and w, h > 0, got {[x, y, w, h]}")
                self.crop = (x, y, w, h)
        if self.layout not in ("rgb", "bgr"):
            raise ValueError(f"FrameSpec: layout must be 'rgb' or 'bgr', not {self.layout!r}")

    @property
    def encoding(self) -> str:
        """The ``sensor_msgs/Image`` encoding of prepared frames."""
        return self.layout + "8"

    @classmethod
    def from_params(cls, width: int, height: int, crop: Sequence[int] = (), **kw: Any) -> FrameSpec:
        """From node parameters (``crop`` ``[]`` for none)."""
        return cls(int(width), int(height), tuple(int(v) for v in crop) if len(crop) else None, **kw)


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ConversionError(f"{what}: expected a non-empty (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return rgb


def prepare_frame(rgb: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Crop, resize and order channels: a contiguous uint8 (spec.height, spec.width, 3) array."""
    rgb = _check_rgb(rgb, "prepare_frame")
    H, W = rgb.shape[:2]
    if spec.crop is not None:
        x, y, w, h = spec.crop
        if x + w > W or y + h > H:
            raise ConversionError(f"crop [x={x}, y={y}, w={w}, h={h}] lies outside the {W}x{H} image")
        rgb = rgb[y:y + h, x:x + w]
    h, w = rgb.shape[:2]
    if (w, h) != (spec.width, spec.height):
        interp = spec.interpolation
        if interp is None:
            interp = cv2.INTER_AREA if spec.width <= w and spec.height <= h else cv2.INTER_LINEAR
        rgb = cv2.resize(np.ascontiguousarray(rgb), (spec.width, spec.height), interpolation=interp)
    if spec.layout == "bgr":
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb, dtype=np.uint8)


__all__ = ["COMPRESSIONS", "DEFAULT_MAX_PIXELS", "SUPPORTED_ENCODINGS", "YUV422_ENCODINGS", "FrameSpec",
           "ImageTooLarge", "JpegHeader", "check_jpeg", "check_pixels", "compressed_to_rgb", "compression_of",
           "encode_compressed", "image_msg_to_rgb", "jpeg_header", "make_compressed_image", "msg_to_rgb",
           "png_header", "prepare_frame", "yuv422_to_rgb"]
