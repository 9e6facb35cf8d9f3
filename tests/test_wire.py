"""Wire compatibility: what our publishers put on the wire equals rosbags' CDR of the same message,
checked on raw samples received in another process over real Cyclone DDS."""

import subprocess
import sys

import numpy as np
import pytest

from tests.wire_samples import TYPES, sample, topic_of
from wm_control.messages import registry
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode, join_request, pad_cdr, split_request, unpad_cdr


@pytest.fixture(scope="module")
def peer():
    p = subprocess.Popen([sys.executable, "-m", "tests.wire_samples", "30"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "published"
    yield p
    p.terminate()
    p.wait(5)


def test_received_raw_samples_equal_rosbags_serialization(peer):
    reg = registry()
    node = DdsNode("wire_check")
    got = {t: [] for t in TYPES}
    for t in TYPES:
        node.create_subscription(t, topic_of(t), lambda d, _i, _t=t: got[_t].append(bytes(d)),
                                 qos.QoSProfile("reliable", "transient_local", 10), raw=True, with_info=True)
    node.spin(until=lambda: all(len(v) >= 3 for v in got.values()), timeout=20)
    node.destroy()
    missing = [t for t, v in got.items() if len(v) < 3]
    assert not missing, f"no samples received for {missing}"
    for t in TYPES:
        for k, raw in enumerate(got[t]):
            expected = bytes(reg.store.serialize_cdr(sample(reg.new, t, k), t))
            assert raw[:4] in (b"\x00\x01\x00\x00", b"\x00\x01\x00\x01", b"\x00\x01\x00\x02", b"\x00\x01\x00\x03"), t
            assert len(raw) % 4 == 0, f"{t}: payload not padded to 4 bytes"
            assert unpad_cdr(raw) == expected, f"{t} sample {k}: wire bytes differ from rosbags CDR"
            # and what we decode is the message that was sent
            back = reg.deserialize(raw, t)
            assert reg.serialize(back, t) == expected


def test_image_data_is_numpy_not_list():
    reg = registry()
    img = sample(reg.new, "sensor_msgs/msg/Image", 0)
    back = reg.deserialize(reg.serialize(img), "sensor_msgs/msg/Image")
    assert isinstance(back.data, np.ndarray) and back.data.dtype == np.uint8
    assert back.data.shape == (96 * 96 * 3,)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_padding_roundtrip(n):
    raw = b"\x00\x01\x00\x00" + bytes(range(n))
    padded = pad_cdr(raw)
    assert len(padded) % 4 == 0
    assert padded[3] & 3 == (-len(raw)) % 4
    assert unpad_cdr(padded) == raw


def test_cyclone_struct_serialization_matches_rosbags():
    """The IdlStruct we announce on the wire has the same layout as the rosbags type."""
    reg = registry()
    s = reg.dds_struct("std_msgs/msg/String")
    assert s.__idl_typename__ == "std_msgs::msg::dds_::String_"
    assert s(data="abc").serialize(use_version_2=False) == reg.serialize(reg.new("std_msgs/msg/String", data="abc"))


# ------------------------------------------------------------------------------------------
# Services: rmw_cyclonedds' request/reply layout
# ------------------------------------------------------------------------------------------
def test_a_request_is_the_cdds_request_header_then_the_fields():
    """``cdds_request_header_t {uint64_t guid; int64_t seq;}`` (rmw_cyclonedds_cpp serdata.hpp), written by
    its CDR writer before the message's fields (Serialization.cpp serialize_top_level)."""
    reg = registry()
    req = reg.new("std_srvs/srv/SetBool_Request", data=True)
    raw = join_request(reg.serialize(req), 0x0102030405060708, -2)
    assert raw == (b"\x00\x01\x00\x00" + bytes.fromhex("0807060504030201") + (-2).to_bytes(8, "little", signed=True)
                   + b"\x01")
    guid, seq, cdr = split_request(pad_cdr(raw))  # the header is 16 bytes: the pad count stays right
    assert (guid, seq, unpad_cdr(cdr)) == (0x0102030405060708, -2, reg.serialize(req))
    empty = join_request(reg.serialize(reg.new("std_srvs/srv/Trigger_Request")), 1, 1)
    assert len(empty) == 4 + 16 + 1  # an empty request still has rosidl's one uint8 member
    with pytest.raises(ValueError, match="too short for a request header"):
        split_request(b"\x00\x01\x00\x00\x01")


@pytest.mark.parametrize("srv_type", sorted(registry().services))
def test_service_halves_on_the_wire_equal_cyclones_own_cdr(srv_type):
    """For every shipped .srv, both halves with the header: our bytes equal Cyclone's serialisation of the
    IdlStruct we announce for the topic (header members first), and decode back to the same message."""
    reg = registry()
    for typename in reg.srv(srv_type):
        assert reg.dds_struct(typename, True).__idl_typename__ == typename.replace("/srv/", "::srv::dds_::") + "_"
        msg = reg.new(typename)
        ours = join_request(reg.serialize(msg), 42, 7)
        theirs = reg.dds_struct(typename, True).deserialize(ours, has_header=True)
        assert (theirs.guid, theirs.seq) == (42, 7)
        assert unpad_cdr(theirs.serialize(use_version_2=False)) == ours
        guid, seq, cdr = split_request(ours)
        assert (guid, seq) == (42, 7) and reg.serialize(reg.deserialize(cdr, typename)) == reg.serialize(msg)


def test_parameter_messages_with_values_on_the_wire():
    reg = registry()
    value = reg.new("rcl_interfaces/msg/ParameterValue", type=8, double_array_value=np.array([0.5, -1.0]))
    req = reg.new("rcl_interfaces/srv/SetParameters_Request",
                  parameters=[reg.new("rcl_interfaces/msg/Parameter", name="gains", value=value)])
    ours = join_request(reg.serialize(req), 9, 3)
    theirs = reg.dds_struct("rcl_interfaces/srv/SetParameters_Request", True).deserialize(ours, has_header=True)
    (p,) = theirs.parameters
    assert (p.name, p.value.type, list(p.value.double_array_value)) == ("gains", 8, [0.5, -1.0])
    assert unpad_cdr(theirs.serialize(use_version_2=False)) == ours
