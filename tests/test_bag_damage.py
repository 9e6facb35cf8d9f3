"""Damaged bags, as a crash, a full disk or a bad sector leaves them: every complete message survives.

Each test is an attack that lost data before: an MCAP cut anywhere (even by one byte) lost all of it;
one corrupt chunk or one undecodable message aborted ``dataset``; a SIGKILLed ``record`` left an empty
file; a folder whose metadata.yaml was never written could not be opened at all."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cyclonedds.util import duration
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapReader

from wm_control.data.bags import BagWriter, CollectConfig, collect
from wm_control.data.dataset import DatasetConfig, DatasetError, load_episodes, read_streams
from wm_control.messages import registry

CFG = CollectConfig(episodes=1, episode_s=0.6, image_width=32, image_height=24, camera_rate=20.0, seed=3)
STEPS = 30  # 0.6 s at 50 Hz, both ends
STRING = "std_msgs/msg/String"


def key(topic, t_ns, data):
    return topic, int(t_ns), bytes(data)


def rosbags_messages(path):
    """The messages of an intact bag, by rosbags' own (indexed) reader: the reference."""
    with AnyReader([Path(path)], default_typestore=registry().store) as r:
        return sorted(key(c.topic, t, raw) for c, t, raw in r.messages())


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """One collected episode: joint states, commands, camera, goal (one bag of one chunk)."""
    out = tmp_path_factory.mktemp("damage_src")
    collect(CFG, out, progress=False)
    return out / "ep_0000"


def rewrite(src, dst, **kw):
    """``src``'s messages in ``dst``, a bag written by BagWriter with ``kw`` (small chunks ...)."""
    reg = registry()
    with AnyReader([Path(src)], default_typestore=reg.store) as r, BagWriter(dst, reg, **kw) as w:
        for c in r.connections:
            w.add_topic(c.topic, c.msgtype)
        for c, t, raw in r.messages():
            w.write_raw(c.topic, t, raw)
    return next(Path(dst).glob("*.mcap"))


class Chunked:
    """A bag of several chunks: its file, its messages in file order and its chunks as rosbags'
    index lists them: (start offset, end offset, messages), with the message offset each begins at."""

    def __init__(self, mcap: Path):
        from wm_control.data.bags import iter_bag_messages

        self.mcap = mcap
        self.data = mcap.read_bytes()
        self.messages = [key(m.topic, m.t_ns, m.data) for m in iter_bag_messages(mcap)]
        r = McapReader(mcap)
        r.open()
        try:
            self.chunks = [(c.chunk_start_offset, c.chunk_start_offset + c.chunk_length, sum(c.channel_count.values()))
                           for c in sorted(r.chunks, key=lambda c: c.chunk_start_offset)]
        finally:
            r.close()
        self.first = np.concatenate([[0], np.cumsum([n for _, _, n in self.chunks])]).astype(int)
        assert self.first[-1] == len(self.messages)

    def before(self, k):
        """The messages of chunks 0 .. k-1."""
        return self.messages[:self.first[k]]


@pytest.fixture(scope="module", params=["", "zstd", "lz4"])
def chunked(episode, tmp_path_factory, request):
    mcap = rewrite(episode, tmp_path_factory.mktemp("chunked") / "bag", flush_s=None, chunk_bytes=6000,
                   compression=request.param)
    bag = Chunked(mcap)
    assert len(bag.chunks) >= 5
    assert sorted(bag.messages) == rosbags_messages(episode)  # our read of an intact bag = rosbags'
    return bag


def cut_copy(tmp_path, name, data: bytes) -> Path:
    p = tmp_path / f"{name}.mcap"
    p.write_bytes(data)
    return p


def read(path, caplog):
    from wm_control.data.bags import iter_bag_messages

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wm_control.data.bags"):
        bag = iter_bag_messages(path)
        got = [key(m.topic, m.t_ns, m.data) for m in bag]
    return got, bag.report, caplog.text


def test_truncated_at_every_chunk_boundary_keeps_every_complete_chunk(chunked, tmp_path, caplog):
    """Cut at each chunk's start, its end, its end + 1 byte and its middle: every message of every
    chunk that ends before the cut comes back, with a one-line warning (before: nothing at all)."""
    size = len(chunked.data)
    cuts = []
    for k, (start, end, _) in enumerate(chunked.chunks):
        cuts += [(start, k), (start + (end - start) // 2, k), (end, k + 1), (end + 1, k + 1)]
    cuts += [(size - 1, len(chunked.chunks)), (size - 30, len(chunked.chunks))]  # the footer, the summary
    for at, complete in cuts:
        got, rep, log = read(cut_copy(tmp_path, f"cut{at}", chunked.data[:at]), caplog)
        assert got == chunked.before(complete), f"cut at {at}"
        assert rep.damaged and rep.messages == len(got)
        lines = [ln for ln in log.splitlines() if "recovered" in ln]
        assert len(lines) == 1 and f"recovered {len(got)} messages" in lines[0] and "truncated" in lines[0], log


def test_corrupt_byte_in_the_middle_chunk_loses_only_that_chunk(chunked, tmp_path, caplog):
    """A flipped byte in the middle chunk's data (bad CRC, or undecompressable), in its length or in its
    compression field: that chunk is lost, with a warning naming it, and reading goes on after it."""
    k = len(chunked.chunks) // 2
    start, end, n = chunked.chunks[k]
    expected = chunked.before(k) + chunked.messages[chunked.first[k + 1]:]
    for name, at in (("data", (start + end) // 2), ("data_end", end - 3), ("length", start + 1),
                     ("compression_field", start + 9 + 28)):
        bad = bytearray(chunked.data)
        bad[at] ^= 0x01
        got, rep, log = read(cut_copy(tmp_path, name, bytes(bad)), caplog)
        assert got == expected, name
        assert rep.messages == len(expected) and rep.expected == len(chunked.messages)
        assert f"recovered {len(expected)} of {len(chunked.messages)} messages" in log, log
        assert f"offset {start}" in log, log  # which chunk


def test_truncated_bag_cut_mid_file_gives_dataset_its_steps(chunked, tmp_path, caplog):
    """``dataset`` on a bag cut in its middle chunk: the steps of the chunks before (before: 0 of 30)."""
    k = len(chunked.chunks) // 2
    start, end, _ = chunked.chunks[k]
    bag = tmp_path / "cut"
    bag.mkdir()
    (bag / "cut.mcap").write_bytes(chunked.data[:(start + end) // 2])
    full = load_episodes([chunked.mcap.parent])[0]
    with caplog.at_level(logging.WARNING):
        eps = load_episodes([bag])
    assert len(eps) == 1 and 0 < len(eps[0]) < len(full) == STEPS
    n = len(eps[0])
    assert np.allclose(eps[0].t, full.t[:n]) and np.allclose(eps[0].q, full.q[:n])
    assert np.allclose(eps[0].action[:-1], full.action[:n - 1])
    assert "truncated" in caplog.text
    with pytest.raises(DatasetError, match="truncated"):
        load_episodes([bag], strict=True)


def test_bag_cut_by_one_byte_loses_nothing(episode, tmp_path, caplog):
    """The last byte of a collected bag (its footer's magic) gone: every step is still there, said
    with a warning (before: 'cannot open bag', 0 of 30 steps)."""
    bag = tmp_path / "cut1"
    shutil.copytree(episode, bag)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-1])
    with caplog.at_level(logging.WARNING):
        eps = load_episodes([bag])
    assert [len(e) for e in eps] == [STEPS]
    assert np.allclose(eps[0].q, load_episodes([episode])[0].q)
    assert "truncated" in caplog.text


def test_bad_cdr_message_is_skipped_and_counted_by_dataset(episode, tmp_path, caplog):
    """One /joint_states payload that is not CDR: skipped and counted (before: it aborted ``dataset``)."""
    reg = registry()
    bag = tmp_path / "bad_cdr"
    with AnyReader([episode], default_typestore=reg.store) as r, BagWriter(bag, reg) as w:
        msgs = [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in r.messages()]
        for c in r.connections:
            w.add_topic(c.topic, c.msgtype)
        for i, (topic, _typ, t, raw) in enumerate(msgs):
            w.write_raw(topic, t, raw)
            if i == len(msgs) // 2:
                w.write_raw("/joint_states", t + 1, b"\x00\x01\x00\x00\x07\x00")  # a length, then nothing
    with caplog.at_level(logging.WARNING):
        eps = load_episodes([bag])
    assert [len(e) for e in eps] == [STEPS]
    assert "1 messages skipped (1 undecodable)" in caplog.text
    s, _ = read_streams(bag, DatasetConfig())
    assert s.dropped == 1 and len(s.js_t) == 61


def test_bag_without_metadata_yaml_or_a_bare_mcap_is_read(episode, tmp_path):
    """A recording that never closed has no metadata.yaml: its folder, its .mcap, and a folder of such
    bags are read (before: 'cannot open bag' / 'no rosbag2 bags')."""
    root = tmp_path / "bags"
    bag = root / "rec"
    shutil.copytree(episode, bag)
    (bag / "metadata.yaml").unlink()
    for path in (bag, next(bag.glob("*.mcap")), root):
        eps = load_episodes([path])
        assert [len(e) for e in eps] == [STEPS], path


def test_bag_repair_output_reads_with_rosbags_and_has_the_recovered_count(chunked, tmp_path, capsys):
    """``wm-control bag repair`` on a cut bag and on one with a corrupt chunk: a complete, indexed
    rosbag2 that rosbags' readers open, holding exactly the recovered messages."""
    from wm_control.cli import main

    k = len(chunked.chunks) // 2
    start, end, _ = chunked.chunks[k]
    cut = cut_copy(tmp_path, "cut", chunked.data[:end - 5])
    bad = bytearray(chunked.data)
    bad[(start + end) // 2] ^= 0xFF
    corrupt = cut_copy(tmp_path, "corrupt", bytes(bad))
    for src, expected, lost in ((cut, chunked.before(k), "truncated"),
                                (corrupt, chunked.before(k) + chunked.messages[chunked.first[k + 1]:], "damaged")):
        out = tmp_path / f"{src.stem}_repaired"
        assert main(["bag", "repair", str(src), str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"wrote {len(expected)} messages" in printed and lost in printed, printed
        assert rosbags_messages(out) == sorted(expected)
        with Reader(out) as r:  # metadata.yaml and the MCAP summary agree
            assert r.message_count == len(expected)
            assert {c.topic for c in r.connections} == {t for t, _, _ in chunked.messages}
        assert main(["bag", "info", str(out)]) == 0
        assert '"damaged": false' in capsys.readouterr().out


def test_bag_written_with_timed_flushes_reads_with_rosbags(tmp_path):
    """The writer flushes a chunk on its timer (the file grows while the bag is open, no message
    written since), and the closed bag reads with rosbags' Reader and AnyReader like any rosbag2."""
    reg = registry()
    bag = tmp_path / "timed"
    w = BagWriter(bag, reg, flush_s=0.2, compression="zstd")
    mcap = next(bag.glob("*.mcap"))
    sent = []
    try:
        for k in range(20):
            w.write("/chatter", 1.0 + k / 100, reg.new(STRING, data=f"m {k}"))
            sent.append(f"m {k}")
        size = mcap.stat().st_size
        end = time.monotonic() + 10
        while mcap.stat().st_size == size:  # the timer's flush
            assert time.monotonic() < end, "no chunk was flushed within 10 s"
            time.sleep(0.02)
        from wm_control.data.bags import iter_bag_messages

        early = iter_bag_messages(bag, warn=False)
        assert [reg.deserialize(m.data, m.msgtype).data for m in early] == sent  # readable while open
        assert early.report.unclosed
        w.write("/goal", 2.0, reg.new("geometry_msgs/msg/PointStamped"))
    finally:
        w.close()
    with Reader(bag) as r:
        assert r.message_count == 21
        assert {c.topic: c.msgcount for c in r.connections} == {"/chatter": 20, "/goal": 1}
        assert "storage_identifier: mcap" in (bag / "metadata.yaml").read_text()
    with AnyReader([bag], default_typestore=reg.store) as r:
        got = [r.deserialize(raw, c.msgtype) for c, _, raw in r.messages()]
    assert [m.data for m in got[:20]] == sent
    assert not iter_bag_messages(bag).report.damaged


# ------------------------------------------------------------------------------------------
# record, killed
# ------------------------------------------------------------------------------------------
@pytest.fixture
def publisher():
    from wm_control.ros import qos as qosmod
    from wm_control.ros.dds import DdsNode

    node = DdsNode("test_bag_kill_pub")
    pub = node.create_publisher(STRING, "/kill_chatter", qosmod.DEFAULT)
    yield node, pub
    node.destroy()


def test_record_killed_with_sigkill_keeps_every_message_older_than_flush_s(tmp_path, publisher, caplog, capsys):
    """``record`` SIGKILLed while a publisher runs: the messages it held for longer than flush_s (1 s)
    plus a margin are all in the file, in order, and ``bag repair`` makes it a complete bag (before:
    an empty file, every message lost)."""
    node, pub = publisher
    bag = tmp_path / "killed"
    err: list[str] = []
    p = subprocess.Popen([sys.executable, "-m", "wm_control", "record", "/kill_chatter", "-o", str(bag)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    pump = threading.Thread(target=lambda: err.extend(p.stderr), daemon=True)
    pump.start()
    try:
        end = time.monotonic() + 20
        while not pub.matched():
            assert p.poll() is None and time.monotonic() < end, "record did not subscribe:\n" + "".join(err)
            time.sleep(0.02)
        old = [f"old {k}" for k in range(60)]
        for text in old:
            pub.publish(node.msg(STRING, data=text))
            time.sleep(0.02)
        assert pub._writer.wait_for_acks(duration(seconds=10)), "record did not take the messages"
        held = time.monotonic()
        k = 0
        while time.monotonic() < held + 1.0 + 1.0:  # flush_s + a margin, publishing all along
            pub.publish(node.msg(STRING, data=f"new {k}"))
            k += 1
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not (bag / "metadata.yaml").exists()  # it never closed
    assert next(bag.glob("*.mcap")).stat().st_size > 0  # (before: an empty file)
    from wm_control.data.bags import iter_bag_messages

    with caplog.at_level(logging.WARNING, logger="wm_control.data.bags"):
        got = [registry().deserialize(m.data, m.msgtype).data for m in iter_bag_messages(bag)]
    assert got[:len(old)] == old, f"{len(got)} recovered:\n" + "".join(err)
    assert got[len(old):] == [f"new {i}" for i in range(len(got) - len(old))]  # then a prefix of the rest
    assert "truncated" in caplog.text
    out = tmp_path / "repaired"
    from wm_control.cli import main

    assert main(["bag", "repair", str(bag), str(out)]) == 0
    assert f"wrote {len(got)} messages" in capsys.readouterr().out
    with Reader(out) as r:
        assert r.message_count == len(got)
        assert [registry().deserialize(raw, c.msgtype).data for c, _, raw in r.messages()] == got
