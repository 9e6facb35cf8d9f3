"""Camera frame decoding (every Image encoding, JPEG/PNG CompressedImage) and crop/resize, no graph."""

import array

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_control.messages import convert as cv
from wm_control.messages import registry
from wm_control.messages.convert import ConversionError
from wm_control.world import frames as im

make = registry().new
H, W = 6, 8


def known_rgb(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def paired_rgb(h: int = H, w: int = W, seed: int = 1) -> np.ndarray:
    """Horizontal pixel pairs share a colour: 4:2:2 chroma subsampling loses nothing on it."""
    half = np.random.default_rng(seed).integers(20, 236, (h, w // 2, 3), dtype=np.uint8)
    return np.repeat(half, 2, axis=1)


def image_msg(raw: np.ndarray, encoding: str, step: int | None = None, bigendian: int = 0, t: float = 1.5):
    """An Image with the rows of ``raw`` ((H, row_bytes) uint8), padded to ``step``."""
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(raw.shape[0], -1)
    h, row = raw.shape
    step = row if step is None else step
    data = np.zeros((h, step), np.uint8)
    data[:, :row] = raw
    width = {"mono16": row // 2, "yuv422": row // 2, "uyvy": row // 2, "yuv422_yuy2": row // 2,
             "yuyv": row // 2, "rgba8": row // 4, "bgra8": row // 4, "mono8": row}.get(encoding, row // 3)
    return make("sensor_msgs/msg/Image", header=cv.header(make, t, "cam"), height=h, width=width,
                encoding=encoding, is_bigendian=bigendian, step=step, data=data.reshape(-1))


# ------------------------------------------------------------------------------------------
# sensor_msgs/Image encodings
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step_pad", [0, 5])
@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_exact_encodings(enc, step_pad):
    rgb = known_rgb()
    alpha = np.full((H, W, 1), 77, np.uint8)
    raw = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], axis=2),
           "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2), "mono8": rgb[..., 0]}[enc]
    if enc == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    row = raw.reshape(H, -1).shape[1]
    out = im.image_msg_to_rgb(image_msg(raw, enc, row + step_pad))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
    assert np.array_equal(out, rgb)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_scaled_to_8_bit(bigendian):
    grey = known_rgb()[..., 0]
    low = known_rgb(seed=5)[..., 1]
    v = grey.astype(np.uint16) * 256 + low  # the high byte is the 8-bit value
    raw = v.astype(">u2" if bigendian else "<u2")
    out = im.image_msg_to_rgb(image_msg(raw, "mono16", bigendian=bigendian))
    assert np.array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    full = im.image_msg_to_rgb(image_msg(np.full((2, 2), 65535, "<u2"), "mono16"))
    assert (full == 255).all()


@pytest.mark.parametrize("enc,to_yuv", [("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
                                        ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUYV), ("yuyv", cv2.COLOR_RGB2YUV_YUYV)])
@pytest.mark.parametrize("step_pad", [0, 4])
def test_yuv422_round_trip(enc, to_yuv, step_pad):
    rgb = paired_rgb()
    yuv = cv2.cvtColor(rgb, to_yuv)  # (H, W, 2)
    out = im.image_msg_to_rgb(image_msg(yuv, enc, 2 * W + step_pad))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).max() <= 3


def bt601(y, u, v):
    """BT.601 video range YUV -> RGB, the textbook formula."""
    c, d, e = y - 16.0, u - 128.0, v - 128.0
    rgb = [1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d]
    return np.clip(np.round(rgb), 0, 255)


@pytest.mark.parametrize("yuv", [(235, 128, 128), (16, 128, 128), (81, 90, 240), (145, 54, 34), (41, 240, 110)])
def test_yuv422_is_bt601_and_byte_order_is_right(yuv):
    y, u, v = yuv
    uyvy = np.array([u, y, v, y], np.uint8).reshape(1, 4)
    yuyv = np.array([y, u, y, v], np.uint8).reshape(1, 4)
    want = bt601(y, u, v)
    for enc, raw in (("yuv422", uyvy), ("yuv422_yuy2", yuyv)):
        out = im.image_msg_to_rgb(image_msg(raw, enc))
        assert out.shape == (1, 2, 3)
        assert np.abs(out.astype(float) - want).max() <= 2, (enc, out[0, 0], want)


@pytest.mark.parametrize("enc,h,w,step,size,err", [
    ("rgb8", 2, 3, 8, 16, "step 8 < width"),
    ("rgb8", 2, 3, 9, 17, "17 bytes, expected"),
    ("rgb8", 2, 3, 9, 19, "19 bytes, expected"),
    ("rgb8", 0, 3, 9, 0, "empty size"),
    ("bgra8", 2, 3, 11, 22, "step 11 < width"),
    ("mono16", 2, 3, 5, 10, "step 5 < width"),
    ("mono16", 2, 3, 6, 11, "11 bytes"),
    ("yuv422", 2, 3, 6, 12, "even width"),
    ("yuv422", 2, 4, 7, 14, "step 7 < width"),
    ("yuv422_yuy2", 2, 4, 8, 15, "15 bytes, expected"),
    ("yuyv", 2, 0, 8, 16, "empty size"),
    ("rgb16", 2, 3, 18, 36, "unsupported encoding"),
    ("nv12", 2, 4, 4, 12, "unsupported encoding"),
])
def test_malformed_images_raise(enc, h, w, step, size, err):
    msg = make("sensor_msgs/msg/Image", height=h, width=w, encoding=enc, step=step,
               data=np.zeros(size, np.uint8))
    with pytest.raises(ConversionError, match=err):
        im.image_msg_to_rgb(msg)


def test_rclpy_style_data_containers():
    """rclpy gives ``uint8[]`` as array.array or bytes, not numpy."""
    rgb = paired_rgb()
    for enc, code in (("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("yuyv", cv2.COLOR_RGB2YUV_YUYV)):
        yuv = cv2.cvtColor(rgb, code).tobytes()
        for data in (yuv, array.array("B", yuv)):
            msg = make("sensor_msgs/msg/Image", height=H, width=W, encoding=enc, step=2 * W, data=np.zeros(0))
            msg.data = data
            assert np.abs(im.image_msg_to_rgb(msg).astype(int) - rgb).max() <= 3
    grey16 = (rgb[..., 0].astype("<u2") * 256).tobytes()
    for enc, raw, step, want in (("rgb8", rgb.tobytes(), 3 * W, rgb), ("bgr8", rgb[..., ::-1].tobytes(), 3 * W, rgb),
                                 ("mono16", grey16, 2 * W, np.repeat(rgb[..., :1], 3, axis=2))):
        for data in (raw, array.array("B", raw), list(raw)):
            msg = make("sensor_msgs/msg/Image", height=H, width=W, encoding=enc, step=step, data=np.zeros(0))
            msg.data = data
            assert np.array_equal(im.image_msg_to_rgb(msg), want), (enc, type(data))
    fmt, jpg = im.encode_compressed(rgb, "png")
    msg = make("sensor_msgs/msg/CompressedImage", format=fmt, data=np.zeros(0))
    msg.data = array.array("B", jpg)
    assert np.array_equal(im.compressed_to_rgb(msg), rgb)


def smooth_rgb(h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 100)], axis=2).astype(np.uint8)


def compressed(fmt: str, data: bytes):
    return make("sensor_msgs/msg/CompressedImage", header=cv.header(make, 2.0), format=fmt,
                data=np.frombuffer(data, np.uint8).copy())


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", "jpg", ""])
def test_jpeg_decodes_within_tolerance(fmt):
    rgb = smooth_rgb()
    written, data = im.encode_compressed(rgb, "jpeg", quality=95)
    assert written == "rgb8; jpeg compressed bgr8"
    out = im.compressed_to_rgb(compressed(fmt, data))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - rgb)
    assert diff.mean() < 2.0 and diff.max() < 20


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8"])
def test_png_is_exact(fmt):
    rgb = known_rgb(20, 30)
    written, data = im.encode_compressed(rgb, "png")
    assert written == "rgb8; png compressed bgr8"
    assert np.array_equal(im.compressed_to_rgb(compressed(fmt, data)), rgb)


def test_mono_compressed():
    grey = smooth_rgb()[..., 0]
    _, buf = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = im.compressed_to_rgb(compressed("mono8; jpeg compressed mono8", buf.tobytes()))
    assert out.shape == grey.shape + (3,)
    assert np.abs(out.astype(int) - grey[..., None]).max() < 10
    _, buf = cv2.imencode(".png", (grey.astype(np.uint16) * 256 + 7))
    out = im.compressed_to_rgb(compressed("mono16; png compressed mono16", buf.tobytes()))
    assert np.array_equal(out, np.repeat(grey[..., None], 3, axis=2))  # 16 bit reduced to the high byte


def test_make_compressed_image_and_dispatch():
    rgb = known_rgb(10, 12)
    msg = im.make_compressed_image(make, 3.25, rgb, "png", frame_id="cam0")
    assert msg.format == "rgb8; png compressed bgr8" and msg.header.frame_id == "cam0"
    assert cv.stamp_sec(msg.header.stamp) == 3.25
    assert np.array_equal(im.msg_to_rgb(msg), rgb)
    assert np.array_equal(im.msg_to_rgb(cv.make_image(make, 0.0, rgb, encoding="rgb8")), rgb)
    with pytest.raises(ValueError):
        im.encode_compressed(rgb, "tiff")
    with pytest.raises(ConversionError):
        im.encode_compressed(rgb[..., 0], "png")


def _corrupt_cases():
    rgb = smooth_rgb()
    _, jpg = im.encode_compressed(rgb, "jpeg")
    _, png = im.encode_compressed(rgb, "png")
    garbage = np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes()
    return [
        ("jpeg", b"", "no data"),
        ("jpeg", garbage, "neither JPEG nor PNG"),
        ("jpeg", jpg[: len(jpg) // 2], "truncated JPEG"),
        ("jpeg", b"\xff\xd8" + garbage + b"\xff\xd9", "corrupt jpeg"),
        ("png", png[: len(png) // 2], "truncated PNG"),
        ("png", png[:8] + garbage + b"IEND\xaeB`\x82", "corrupt png"),
        ("png", jpg, "format says png but the data is jpeg"),
        ("rgb8; png compressed bgr8", jpg, "format says png"),
        ("tiff", jpg, "unsupported format"),
        ("16UC1; compressedDepth png", png, "compressedDepth"),
    ]


@pytest.mark.parametrize("fmt,data,err", _corrupt_cases())
def test_corrupt_compressed_raises(fmt, data, err):
    with pytest.raises(ConversionError, match=err):
        im.compressed_to_rgb(compressed(fmt, data))


# ------------------------------------------------------------------------------------------
# FrameSpec / prepare_frame
# ------------------------------------------------------------------------------------------
BLOCK = 8
COLOURS = np.random.default_rng(7).integers(0, 256, (4, 6, 3), dtype=np.uint8)  # 4 rows x 6 columns of blocks


def blocks() -> np.ndarray:
    """A 48x32 image of 8x8 blocks whose colours are COLOURS[row, column]."""
    return np.repeat(np.repeat(COLOURS, BLOCK, axis=0), BLOCK, axis=1)


def test_crop_then_shrink_gives_the_block_colours():
    img = blocks()
    assert img.shape == (32, 48, 3)
    # blocks columns 2..4 of rows 1..2, one output pixel per block (INTER_AREA averages a uniform block)
    out = im.prepare_frame(img, im.FrameSpec(3, 2, crop=(2 * BLOCK, BLOCK, 3 * BLOCK, 2 * BLOCK)))
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, COLOURS[1:3, 2:5])
    whole = im.prepare_frame(img, im.FrameSpec(6, 4))
    assert np.array_equal(whole, COLOURS)


def test_shrink_averages_a_gradient():
    ramp = np.repeat(np.arange(0, 64, 2, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(4, axis=0)  # 32 wide
    out = im.prepare_frame(ramp, im.FrameSpec(16, 2))
    assert np.array_equal(out[0, :, 0], np.arange(16) * 4 + 1)  # mean of (4k, 4k+2)


def test_upscale_and_layout():
    img = blocks()
    one = im.prepare_frame(img, im.FrameSpec(5, 7, crop=[BLOCK, 0, BLOCK, BLOCK]))
    assert one.shape == (7, 5, 3)
    assert (one == COLOURS[0, 1]).all()
    bgr = im.prepare_frame(img, im.FrameSpec(6, 4, layout="bgr"))
    assert np.array_equal(bgr, COLOURS[..., ::-1]) and bgr.flags.c_contiguous
    assert im.FrameSpec(6, 4, layout="bgr").encoding == "bgr8"
    same = im.prepare_frame(img, im.FrameSpec(48, 32))
    assert np.array_equal(same, img)


def test_interpolation_choice():
    img = known_rgb(30, 40)
    assert np.array_equal(im.prepare_frame(img, im.FrameSpec(17, 11)),
                          cv2.resize(img, (17, 11), interpolation=cv2.INTER_AREA))
    assert np.array_equal(im.prepare_frame(img, im.FrameSpec(57, 45)),
                          cv2.resize(img, (57, 45), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(im.prepare_frame(img, im.FrameSpec(20, 45)),  # grows in one direction
                          cv2.resize(img, (20, 45), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(im.prepare_frame(img, im.FrameSpec(20, 15, interpolation=cv2.INTER_NEAREST)),
                          cv2.resize(img, (20, 15), interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("crop", [(40, 0, 9, 8), (0, 30, 8, 3), (47, 31, 2, 1)])
def test_crop_outside_the_image_raises(crop):
    with pytest.raises(ConversionError, match="outside the 48x32 image"):
        im.prepare_frame(blocks(), im.FrameSpec(4, 4, crop=crop))


@pytest.mark.parametrize("kw", [{"width": 0}, {"height": -1}, {"crop": (0, 0, 4)}, {"crop": (-1, 0, 4, 4)},
                                {"crop": (0, 0, 0, 4)}, {"layout": "yuv"}])
def test_bad_frame_spec(kw):
    with pytest.raises(ValueError):
        im.FrameSpec(**{"width": 4, "height": 4, **kw})


def test_frame_spec_from_params():
    assert im.FrameSpec.from_params(8, 6, []).crop is None
    assert im.FrameSpec.from_params(8, 6, [1, 2, 3, 4]).crop == (1, 2, 3, 4)


def test_prepare_frame_rejects_non_rgb():
    with pytest.raises(ConversionError):
        im.prepare_frame(np.zeros((4, 4), np.uint8), im.FrameSpec(2, 2))
    with pytest.raises(ConversionError):
        im.prepare_frame(np.zeros((4, 4, 3), np.float32), im.FrameSpec(2, 2))


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), ow=st.integers(1, 30), oh=st.integers(1, 30),
       data=st.data())
def test_prepare_frame_shape_property(h, w, ow, oh, data):
    x = data.draw(st.integers(0, w - 1))
    y = data.draw(st.integers(0, h - 1))
    cw = data.draw(st.integers(1, w - x))
    ch = data.draw(st.integers(1, h - y))
    img = np.full((h, w, 3), 9, np.uint8)
    out = im.prepare_frame(img, im.FrameSpec(ow, oh, crop=(x, y, cw, ch)))
    assert out.shape == (oh, ow, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert (out == 9).all()


# ------------------------------------------------------------------------------------------
# Sizes from the headers, before decoding; complete JPEGs only
# ------------------------------------------------------------------------------------------
def _jpeg(rgb: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb, list(params))
    assert ok
    return buf.tobytes()


def _segments(jpg: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset, total length) of the segments before the first scan's data."""
    out, pos = [], 2
    while True:
        m, length = jpg[pos + 1], int.from_bytes(jpg[pos + 2:pos + 4], "big")
        out.append((m, pos, 2 + length))
        if m == 0xDA:
            return out
        pos += 2 + length


def test_standard_huffman_tables_are_the_ones_opencv_writes():
    jpg = _jpeg(np.zeros((8, 8, 3), np.uint8))
    written = {}
    for m, pos, n in _segments(jpg):
        if m == 0xC4:
            seg, i = jpg[pos + 4:pos + n], 0
            while i < len(seg):
                total = sum(seg[i + 1:i + 17])
                written[(seg[i] >> 4, seg[i] & 15)] = seg[i + 1:i + 17 + total]
                i += 17 + total
    assert written == im._STD_HUFFMAN


def test_headers_give_the_size_without_decoding():
    rgb = known_rgb(21, 34)
    _, png = im.encode_compressed(rgb, "png")
    _, jpg = im.encode_compressed(rgb, "jpeg")
    assert im.png_header(png) == (34, 21)
    h = im.jpeg_header(jpg)
    assert (h.width, h.height, h.components, h.process, h.precision) == (34, 21, 3, "baseline", 8)
    full = im.check_jpeg(jpg)
    assert full.verified and full.scans == 1 and (full.width, full.height) == (34, 21)
    with pytest.raises(im.ImageTooLarge, match="34x21 = 714 pixels is over the limit of 700"):
        im.jpeg_header(jpg, max_pixels=700)
    with pytest.raises(im.ImageTooLarge):
        im.compressed_to_rgb(compressed("png", png), max_pixels=700)
    assert im.compressed_to_rgb(compressed("png", png), max_pixels=714).shape == (21, 34, 3)
    assert im.compressed_to_rgb(compressed("png", png), max_pixels=None).shape == (21, 34, 3)


def test_raw_image_pixel_limit():
    msg = image_msg(known_rgb(6, 8), "rgb8")
    assert im.image_msg_to_rgb(msg, max_pixels=48).shape == (6, 8, 3)
    with pytest.raises(im.ImageTooLarge, match="8x6 = 48 pixels"):
        im.image_msg_to_rgb(msg, max_pixels=47)
    # a header that claims a huge image is refused before its data is looked at
    liar = make("sensor_msgs/msg/Image", height=100000, width=100000, encoding="rgb8", step=300000,
                data=np.zeros(12, np.uint8))
    with pytest.raises(im.ImageTooLarge):
        im.image_msg_to_rgb(liar)


@pytest.mark.parametrize("edit,err", [
    (lambda j, s: j[:s["sof"] + 5] + b"\x00\x00" + j[s["sof"] + 7:], "frame size"),  # height 0 (DNL)
    (lambda j, s: j[:s["sof"] + s["sof_n"]] + j[s["sof"]:], "two frame headers"),
    (lambda j, s: j[:s["sof"]] + j[s["sof"] + s["sof_n"]:], "scan before the frame header"),
    (lambda j, s: j[:s["dqt"] + 2] + b"\xff\xf0" + j[s["dqt"] + 4:], "segment at offset"),  # length past the end
    (lambda j, s: j[:2] + b"\x00" + j[2:], "where a marker belongs"),
    (lambda j, s: j[:-2], "no marker after its data"),
])
def test_malformed_jpeg_structure(edit, err):
    jpg = _jpeg(known_rgb(16, 16))
    segs = _segments(jpg)
    where = {"sof": next(p for m, p, _ in segs if m == 0xC0), "sof_n": next(n for m, _, n in segs if m == 0xC0),
             "dqt": next(p for m, p, _ in segs if m == 0xDB)}
    with pytest.raises(ConversionError, match=err):
        im.check_jpeg(edit(jpg, where))


def test_bytes_after_the_last_mcu_or_after_eoi_are_harmless():
    """Decoders skip them, and so does the check: the image is whole."""
    jpg = _jpeg(known_rgb(16, 16))
    want = im.compressed_to_rgb(compressed("jpeg", jpg))
    for extra in (jpg[:-2] + b"\x00\x12" + jpg[-2:], jpg + b"trailer"):
        assert im.check_jpeg(extra).verified
        assert np.array_equal(im.compressed_to_rgb(compressed("jpeg", extra)), want)


def _cut_with_end_marker(jpg: bytes, frac: float) -> bytes:
    """The stream cut at ``frac`` of its (single) scan's data, at least its last byte gone, then EOI."""
    start = next(p + n for m, p, n in _segments(jpg) if m == 0xDA)
    end = len(jpg) - 2  # the scan's data ends at EOI
    return jpg[:min(end - 1, start + int(frac * (end - start)))] + b"\xff\xd9"


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 120), w=st.integers(1, 120), quality=st.integers(1, 100),
       content=st.sampled_from(["noise", "smooth", "flat"]), grey=st.booleans(), optimize=st.booleans(),
       restart=st.sampled_from([0, 0, 1, 3]), sampling=st.sampled_from([0x221111, 0x411111, 0x211111, 0x111111]),
       seed=st.integers(0, 2**16), frac=st.floats(0.0, 1.0))
def test_complete_jpegs_pass_truncated_ones_do_not(h, w, quality, content, grey, optimize, restart, sampling,
                                                    seed, frac):
    rng = np.random.default_rng(seed)
    img = {"noise": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
           "smooth": lambda: cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0),
           "flat": lambda: np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)}[content]()
    if grey:
        img = np.ascontiguousarray(img[..., 0])
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, int(optimize),
              cv2.IMWRITE_JPEG_RST_INTERVAL, restart, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    jpg = _jpeg(img, *params)
    assert im.check_jpeg(jpg).verified
    out = im.compressed_to_rgb(compressed("jpeg", jpg))  # what the node produced before: cv2's decode, RGB
    assert np.array_equal(out, cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR),
                                            cv2.COLOR_BGR2RGB))
    for f in (0.5, 0.9, frac):
        bad = _cut_with_end_marker(jpg, f)
        with pytest.raises(ConversionError, match="truncated"):
            im.compressed_to_rgb(compressed("jpeg", bad))


def test_truncated_at_a_restart_marker():
    jpg = _jpeg(known_rgb(64, 64), cv2.IMWRITE_JPEG_RST_INTERVAL, 2)
    rst = [i for i in range(len(jpg) - 1) if jpg[i] == 0xFF and 0xD0 <= jpg[i + 1] <= 0xD7]
    assert len(rst) > 2
    for i in (rst[0], rst[len(rst) // 2], rst[-1]):  # whole intervals missing
        with pytest.raises(ConversionError, match="restart intervals"):
            im.check_jpeg(jpg[:i] + b"\xff\xd9")
    trailing = jpg[:-2] + bytes([0xFF, 0xD0 + len(rst) % 8]) + jpg[-2:]  # one more after the last interval:
    assert im.check_jpeg(trailing).verified  # libjpeg ignores it, and so does the check
    swapped = bytearray(jpg)
    swapped[rst[1] + 1], swapped[rst[2] + 1] = swapped[rst[2] + 1], swapped[rst[1] + 1]
    with pytest.raises(ConversionError, match="out of sequence"):
        im.check_jpeg(bytes(swapped))


def test_motion_jpeg_without_huffman_tables():
    """Webcam MJPEG frames leave out the DHT segment: decoders use the standard tables, so does the check."""
    rgb = smooth_rgb()
    jpg = _jpeg(rgb[..., ::-1].copy())
    bare = b"".join([jpg[:2]] + [jpg[p:p + n] for m, p, n in _segments(jpg)[:-1] if m != 0xC4]) + \
        jpg[_segments(jpg)[-1][1]:]
    assert b"\xff\xc4" not in bare[:bare.index(b"\xff\xda")]
    assert im.check_jpeg(bare).verified
    assert np.array_equal(im.compressed_to_rgb(compressed("jpeg", bare)), im.compressed_to_rgb(compressed("jpeg", jpg)))
    with pytest.raises(ConversionError, match="truncated"):
        im.check_jpeg(_cut_with_end_marker(bare, 0.7))


def test_progressive_jpeg_is_refused_unless_unverified():
    rgb = smooth_rgb()
    jpg = _jpeg(rgb[..., ::-1].copy(), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    with pytest.raises(ConversionError, match="progressive JPEG"):
        im.compressed_to_rgb(compressed("jpeg", jpg))
    out = im.compressed_to_rgb(compressed("jpeg", jpg), verify_jpeg=False)
    info = im.check_jpeg(jpg, verify=False)
    assert info.process == "progressive" and info.scans > 1 and not info.verified
    assert np.abs(out.astype(int) - rgb).mean() < 2.0


def test_png_header_must_come_first():
    _, png = im.encode_compressed(known_rgb(4, 4), "png")
    with pytest.raises(ConversionError, match="first chunk"):
        im.png_header(png[:12] + b"IHDx" + png[16:])
    with pytest.raises(ConversionError, match="truncated PNG"):
        im.png_header(png[:20])
