"""Message <-> numpy conversions and the message registry, on hand-built messages (no graph)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_control.messages import convert as cv
from wm_control.messages import dds_type_name, registry, ros_type_name
from wm_control.world.frames import image_msg_to_rgb

make = registry().new


def test_joint_state_read_by_name_not_index():
    msg = cv.make_joint_state(make, 1.0, ["b", "extra", "a"], np.array([2.0, 9.0, 1.0]), np.array([20.0, 0, 10.0]))
    q, qd, eff = cv.joint_state_to_arrays(msg, ["a", "b"])
    assert q.tolist() == [1.0, 2.0] and qd.tolist() == [10.0, 20.0]
    assert np.isnan(eff).all()  # effort absent: reported as unknown, not zero


@pytest.mark.parametrize("names,pos,err", [
    (["a"], [1.0], "missing joints"),
    (["a", "b"], [1.0], "2 names but 1 positions"),
    (["a", "b"], [1.0, np.nan], "non-finite"),
    (["a", "a"], [1.0, 2.0], "duplicate"),
])
def test_joint_state_errors(names, pos, err):
    msg = cv.make_joint_state(make, 0.0, names, np.array(pos))
    with pytest.raises(cv.ConversionError, match=err):
        cv.joint_state_to_arrays(msg, ["a", "b"])


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_encodings_to_rgb(enc):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if enc == "rgb8":
        raw = rgb
    elif enc == "bgr8":
        raw = rgb[..., ::-1]
    elif enc == "rgba8":
        raw = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], axis=2)
    elif enc == "bgra8":
        raw = np.concatenate([rgb[..., ::-1], np.zeros((5, 7, 1), np.uint8)], axis=2)
    else:
        raw = rgb[..., :1]
        rgb = np.repeat(raw, 3, axis=2)
    msg = cv.make_image(make, 0.0, raw, encoding=enc)
    assert np.array_equal(image_msg_to_rgb(msg), rgb)


def test_image_with_row_padding():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    msg = make("sensor_msgs/msg/Image", height=2, width=3, encoding="rgb8", step=12, data=padded.reshape(-1))
    assert np.array_equal(image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize("kw,err", [
    ({"encoding": "yuv_weird"}, "unsupported encoding"),
    ({"step": 5}, "step"),
    ({"data": np.zeros(10, np.uint8)}, "data has 10 bytes"),
    ({"height": 0}, "empty"),
])
def test_malformed_images_are_rejected(kw, err):
    base = dict(height=2, width=3, encoding="rgb8", step=9, data=np.zeros(18, np.uint8))
    base.update(kw)
    with pytest.raises(cv.ConversionError, match=err):
        image_msg_to_rgb(make("sensor_msgs/msg/Image", **base))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), extra=st.integers(0, 4), data_delta=st.integers(-3, 3))
def test_image_validation_property(h, w, extra, data_delta):
    """Any (size, step, data length) either converts to exactly the rows given or is rejected, by the
    codec here (``image_to_array``) and so by the decoder on it (``frames.image_msg_to_rgb``)."""
    step = w * 3 + extra
    n = h * step + data_delta
    data = np.random.default_rng(h * 31 + w).integers(0, 256, max(n, 0), dtype=np.uint8)
    msg = make("sensor_msgs/msg/Image", height=h, width=w, encoding="rgb8", step=step, data=data)
    if data_delta != 0:
        for decode in (cv.image_to_array, image_msg_to_rgb):
            with pytest.raises(cv.ConversionError):
                decode(msg)
    else:
        want = data.reshape(h, step)[:, : w * 3].reshape(h, w, 3)
        assert np.array_equal(cv.image_to_array(msg), want)
        out = image_msg_to_rgb(msg)
        assert out.shape == (h, w, 3) and out.flags.c_contiguous
        assert np.array_equal(out, want)


@pytest.mark.parametrize("t,fields", [
    (0.0, {"sec": 0, "nanosec": 0}), (1.5, {"sec": 1, "nanosec": 500_000_000}),
    (1.9999999999, {"sec": 2, "nanosec": 0}), (-0.25, {"sec": -1, "nanosec": 750_000_000}),
    (1_700_000_000.25, {"sec": 1_700_000_000, "nanosec": 250_000_000}),
])
def test_time_helpers(t, fields):
    assert cv.time_fields(t) == fields and cv.sec_nsec(t) == (fields["sec"], fields["nanosec"])
    stamp = make("builtin_interfaces/msg/Time", **fields)
    assert cv.stamp_ns(stamp) == fields["sec"] * 1_000_000_000 + fields["nanosec"]
    assert cv.ns_fields(cv.stamp_ns(stamp)) == fields
    assert cv.stamp_sec(stamp) == pytest.approx(t, abs=1e-6)


class Stamp:
    def __init__(self, sec, nanosec):
        self.sec, self.nanosec = sec, nanosec


@settings(max_examples=200, deadline=None)
@given(ns=st.integers(-(2**62), 2**62))
def test_time_in_nanoseconds_round_trips_exactly(ns):
    f = cv.ns_fields(ns)
    assert 0 <= f["nanosec"] < 1_000_000_000 and f["sec"] * 1_000_000_000 + f["nanosec"] == ns
    assert cv.stamp_ns(Stamp(**f)) == ns


@settings(max_examples=300, deadline=None)
@given(t=st.floats(-4e9, 4e9, allow_nan=False) | st.floats(1.6e9, 1.8e9))
def test_seconds_to_stamp_is_the_nearest_nanosecond(t):
    """Also for epoch times, where ``round(t * 1e9)`` is off by up to 128 ns (the product is past 2**53)."""
    from fractions import Fraction

    sec, nsec = cv.sec_nsec(t)
    assert 0 <= nsec < 1_000_000_000
    assert abs(Fraction(t) * 10**9 - (sec * 10**9 + nsec)) <= Fraction(1, 2) + Fraction(1, 10**6)


def test_stamp_with_nanosec_out_of_range_is_an_error():
    for nanosec in (1_000_000_000, -1):
        with pytest.raises(cv.ConversionError, match="out of range"):
            cv.stamp_ns(Stamp(1, nanosec))


def test_command_and_trajectory_conversions():
    assert cv.multiarray_to_command(cv.make_multiarray(make, np.array([1.0, 2.0])), 2).tolist() == [1.0, 2.0]
    with pytest.raises(cv.ConversionError, match="expected 2"):
        cv.multiarray_to_command(cv.make_multiarray(make, np.array([1.0])), 2)
    with pytest.raises(cv.ConversionError, match="non-finite"):
        cv.multiarray_to_command(cv.make_multiarray(make, np.array([1.0, np.inf])), 2)
    traj = cv.make_trajectory(make, 0.0, ["b", "a"], [0.1, 0.2], np.array([[2.0, 1.0], [4.0, 3.0]]))
    t, pos = cv.trajectory_to_arrays(traj, ["a", "b"])
    assert t.tolist() == pytest.approx([0.1, 0.2]) and pos.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    bad = cv.make_trajectory(make, 0.0, ["a", "zzz"], [0.1], np.array([[1.0, 2.0]]))
    with pytest.raises(cv.ConversionError, match="unknown joints"):
        cv.trajectory_to_arrays(bad, ["a", "b"])
    back = cv.make_trajectory(make, 0.0, ["a", "b"], [0.2, 0.1], np.zeros((2, 2)))
    with pytest.raises(cv.ConversionError, match="increasing"):
        cv.trajectory_to_arrays(back, ["a", "b"])


def test_registry_defaults_names_and_our_messages():
    reg = registry()
    plan = reg.new("wm_control/msg/Plan")
    assert plan.actions.dtype == np.float64 and plan.actions.size == 0 and plan.header.stamp.sec == 0
    assert reg.constants("wm_control/msg/Plan")["STATUS_UNCERTAIN"] == 1
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert ros_type_name("wm_control::msg::dds_::LatentState_") == "wm_control/msg/LatentState"
    assert ros_type_name("DCPSParticipant") is None
    with pytest.raises(TypeError, match="no field"):
        reg.new("std_msgs/msg/String", dta="x")
    with pytest.raises(KeyError, match="unknown message type"):
        reg.new("nope_msgs/msg/Nope")


def test_new_msg_file_is_all_it_takes(tmp_path, monkeypatch):
    """Adding a .msg file to the package's msg folder makes the type usable (defs at run time)."""
    import wm_control.messages as m

    d = tmp_path / "msg"
    d.mkdir()
    for f in m.msg_dirs()[0].glob("*.msg"):
        (d / f.name).write_text(f.read_text())
    (d / "Extra.msg").write_text("std_msgs/Header header\nfloat32[] values\nstring note\n")
    monkeypatch.setattr(m, "msg_dirs", lambda: [d])
    reg = m.MessageRegistry("jazzy")
    msg = reg.new("wm_control/msg/Extra", note="hi", values=np.ones(3, np.float32))
    assert reg.deserialize(reg.serialize(msg), "wm_control/msg/Extra").note == "hi"
    assert reg.type_hash("wm_control/msg/Extra").startswith("RIHS01_")
    assert reg.dds_struct("wm_control/msg/Extra").__idl_typename__ == "wm_control::msg::dds_::Extra_"
