"""rosbag2 (MCAP) writing and reading: ``wm-control record`` (live topics), ``wm-control collect`` (sim
data), ``wm-control bag repair`` and the reader ``dataset`` and ``replay`` use (:func:`iter_bag_messages`).

Bags are written with ``rosbags``' rosbag2 writer (rosbag2 metadata version 8, CDR payloads) over our
MCAP storage (chunks with CRCs, flushed to the file as they close and on a timer), so ``ros2 bag
info/play`` and any rosbag2 reader open them, and a killed writer leaves a readable file. The reader
walks an MCAP file's records from the start, so a cut or damaged file yields every complete message.

``collect`` runs behaviour policies on the simulated arm in-process (no graph, deterministic, as fast
as the CPU allows) and logs exactly the topics a real robot would: joint states, camera, commands, goal.

The heavy imports (numpy, rosbags, the message registry, Cyclone DDS) happen inside the functions, so
``wm-control record`` reaches its signal handlers within a few tens of milliseconds of starting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import struct
import sys
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, NamedTuple

from wm_control.errors import UserError
from wm_control.sim.robots import DEFAULT_ROBOT, success_radius

if TYPE_CHECKING:
    import numpy as np

    from wm_control.messages import MessageRegistry

#: the topics a ros2_control arm with a camera logs, and their types
ROBOT_TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray",
    "/goal": "geometry_msgs/msg/PointStamped",
}
#: what a simulated robot with an object adds to its bags: the goal as a picture (a robot's task could
#: give it) and the object's true position, which only evaluation and labelling may read
OBJECT_TOPICS = {
    "/goal_image": "sensor_msgs/msg/Image",
    "/sim/ground_truth/object": "geometry_msgs/msg/PointStamped",
}


class BagWriter:
    """An MCAP rosbag2 writer taking messages or raw CDR, with the ROS distro's type definitions.

    rosbags' :class:`~rosbags.rosbag2.Writer` does the rosbag2 side (connections, ``metadata.yaml``);
    the MCAP file is ours (:class:`_McapStorage`): schemas and channels go to the file as they are
    added (and into the next chunk), messages into a chunk (with its CRC) that is written and flushed
    to the OS when it reaches
    ``chunk_bytes`` or, when ``flush_s`` is set, once its oldest message is ``flush_s`` s old (a
    background timer, so a silent topic is flushed too). A process killed even with SIGKILL leaves a
    file holding every message older than about ``flush_s``, which :func:`iter_bag_messages` and
    ``wm-control bag repair`` read back. ``flush_s=None``: chunks by size only (byte-reproducible
    bags, as ``collect`` writes). ``compression``: '' (default), 'zstd' or 'lz4' chunks.
    """

    def __init__(self, path: str | Path, reg: MessageRegistry | None = None, overwrite: bool = False,
                 flush_s: float | None = 1.0, chunk_bytes: int = 1 << 20, compression: str = ""):
        from functools import partial

        from rosbags.rosbag2 import StoragePlugin, Writer

        from wm_control.messages import registry

        if flush_s is not None and not flush_s > 0:
            raise ValueError("flush_s must be > 0 (or None: no timed flushes)")
        if compression not in _COMPRESSIONS:
            raise ValueError(f"compression must be one of {sorted(_COMPRESSIONS)}, not {compression!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"bag {self.path} exists; choose another name or pass --overwrite")
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        self.reg = reg or registry()
        self.flush_s = flush_s
        self.writer = Writer(self.path, version=8, storage_plugin=StoragePlugin.MCAP)
        # rosbags' writer with our MCAP storage (its open() takes the plugin from this mapping)
        self.writer.STORAGE_PLUGINS = {StoragePlugin.MCAP: partial(_McapStorage, chunk_bytes=int(chunk_bytes),
                                                                   compression=compression)}
        self.writer.open()
        self.storage: _McapStorage = self.writer.storage  # type: ignore[assignment]
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if flush_s is not None:
            self._flusher = threading.Thread(target=self._flush_loop, name="bag-flush", daemon=True)
            self._flusher.start()

    def add_topic(self, topic: str, typename: str, typestore: Any = None, qos: Iterable[Any] = ()) -> None:
        """A connection for ``topic`` (once); ``typestore``: where the type is defined (default: the
        registry's); ``qos``: rosbags ``Qos`` profiles the publishers offered."""
        with self._lock:
            if topic in self.connections:
                return
            self.connections[topic] = self.writer.add_connection(
                topic, typename, typestore=typestore or self.reg.store, serialization_format="cdr",
                offered_qos_profiles=list(qos))
            self.counts[topic] = 0

    def write_raw(self, topic: str, t_ns: int, cdr: bytes | memoryview) -> None:
        with self._lock:
            self.writer.write(self.connections[topic], int(t_ns), cdr)
            self.counts[topic] += 1
            if self.flush_s is not None and self.storage.pending_for() >= self.flush_s:
                self.storage.flush()

    def write(self, topic: str, t: float, msg: Any, typename: str | None = None) -> None:
        typename = typename or msg.__msgtype__
        self.add_topic(topic, typename)
        self.write_raw(topic, int(round(t * 1e9)), self.reg.serialize(msg, typename))

    def flush(self) -> None:
        """Write the pending chunk (if any) and hand the file's buffer to the OS now."""
        with self._lock:
            if not self._closed:
                self.storage.flush()

    def _flush_loop(self) -> None:
        # every flush_s / 2 s, flush a chunk whose oldest message is flush_s / 2 s old: no message
        # waits more than about flush_s before it is in the file
        period = self.flush_s / 2  # type: ignore[operator]
        while not self._stop.wait(period):
            with self._lock:
                if self._closed:
                    return
                if self.storage.pending_for() >= period:
                    self.storage.flush()

    def close(self) -> None:
        """Write the last chunk, the summary and ``metadata.yaml`` (again: nothing)."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------------
# MCAP: our storage writer (chunks flushed as they close) and a reader that keeps every complete
# message of a truncated or damaged file
# ------------------------------------------------------------------------------------------
MCAP_MAGIC = b"\x89MCAP0\r\n"
_HEADER, _FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _MESSAGE_INDEX, _CHUNK_INDEX = range(1, 9)
_METADATA, _METADATA_INDEX, _STATISTICS, _SUMMARY_OFFSET, _DATA_END = 0x0C, 0x0D, 0x0B, 0x0E, 0x0F
_COMPRESSIONS = ("", "zstd", "lz4")
_FOOTER_BYTES = 9 + 20 + len(MCAP_MAGIC)  # footer record + closing magic
_LOOSE = 1000  # messages outside chunks, before any chunk, that make a file an unchunked one


def _zstd() -> Any:
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    return zstd


def _compressor(name: str) -> Callable[[bytes], bytes]:
    if name == "zstd":
        return _zstd().compress
    if name == "lz4":
        import lz4.frame

        return lz4.frame.compress
    return bytes


def _decompress(name: str, data: bytes) -> bytes:
    if name == "zstd":
        return _zstd().decompress(data)
    if name == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    if name == "":
        return data
    raise ValueError(f"unsupported chunk compression {name!r}")


def _mstr(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def _mstrmap(pairs: dict[str, str]) -> bytes:
    body = b"".join(_mstr(k) + _mstr(v) for k, v in pairs.items())
    return struct.pack("<I", len(body)) + body


def _record(op: int, body: bytes) -> bytes:
    return struct.pack("<BQ", op, len(body)) + body


class _McapStorage:
    """The storage half of ``rosbags.rosbag2.Writer`` (its ``StorageWriter`` protocol), writing MCAP.

    As rosbag2's MCAP plugin does: profile ``ros2``, schemas ``ros2msg`` (or ``ros2idl``), messages
    ``cdr``, the rosbag2 metadata record, an indexed summary. Unlike rosbags' own writer, schemas and
    channels are written outside chunks the moment they are added (and again in the next chunk, under
    its CRC), chunks and the summary carry their CRCs, and each closed chunk is flushed to the OS at
    once, so the file is readable up to its last chunk at any moment.
    """

    def __init__(self, path: Path, _compression_mode: Any = None, *, chunk_bytes: int = 1 << 20,
                 compression: str = "") -> None:
        from importlib.metadata import version

        self.path = path / f"{path.name}.mcap"
        self.file = self.path.open("xb")
        self.offset = 0
        self.chunk_bytes = chunk_bytes
        self.compression = compression
        self.compress = _compressor(compression)
        self.schema_ids: dict[str, int] = {}
        self.schemas: list[bytes] = []  # their records, repeated in the summary
        self.channels: list[bytes] = []
        self.chunk_indexes: list[bytes] = []
        self.counts: dict[int, int] = {}
        self.t_min, self.t_max = None, None
        self.summary_crc: int | None = None  # running while the summary is written
        self._new_chunk()
        self._out(MCAP_MAGIC + _record(_HEADER, _mstr("ros2") + _mstr(f"wm_control, rosbags {version('rosbags')}")))
        self.file.flush()

    def _out(self, data: bytes) -> None:
        self.file.write(data)
        self.offset += len(data)
        if self.summary_crc is not None:
            self.summary_crc = zlib.crc32(data, self.summary_crc)

    def _new_chunk(self) -> None:
        self.buf = bytearray()
        self.index: dict[int, list[tuple[int, int]]] = {}
        self.c_min, self.c_max = 2**64 - 1, 0
        self.pending_since: float | None = None

    def pending_for(self) -> float:
        """Seconds since the oldest message of the pending chunk was written (0: none pending)."""
        return 0.0 if self.pending_since is None else time.monotonic() - self.pending_since

    def add_msgtype(self, connection: Any) -> None:
        fmt = "ros2idl" if connection.msgdef.format.name == "IDL" else "ros2msg"
        sid = len(self.schemas) + 1
        rec = _record(_SCHEMA, struct.pack("<H", sid) + _mstr(connection.msgtype) + _mstr(fmt)
                      + _mstr(connection.msgdef.data))
        self.schema_ids[connection.msgtype] = sid
        self.schemas.append(rec)
        self._out(rec)  # now, for a file killed before its next chunk ...
        self.buf += rec  # ... and in that chunk, under its CRC
        self.file.flush()

    def add_connection(self, connection: Any, offered_qos_profiles: str) -> None:
        rec = _record(_CHANNEL, struct.pack("<HH", connection.id, self.schema_ids[connection.msgtype])
                      + _mstr(connection.topic) + _mstr(connection.ext.serialization_format)
                      + _mstrmap({"offered_qos_profiles": offered_qos_profiles}))
        self.channels.append(rec)
        self.counts[connection.id] = 0
        self._out(rec)
        self.buf += rec
        self.file.flush()

    def write(self, connection: Any, timestamp: int, data: bytes | memoryview) -> None:
        cid = connection.id
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self.index.setdefault(cid, []).append((timestamp, len(self.buf)))
        self.buf += struct.pack("<BQHIQQ", _MESSAGE, 22 + len(data), cid, self.counts[cid] & 0xFFFFFFFF,
                                timestamp, timestamp)
        self.buf += data
        self.counts[cid] += 1
        self.c_min, self.c_max = min(self.c_min, timestamp), max(self.c_max, timestamp)
        if len(self.buf) >= self.chunk_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the pending chunk and its message indexes, and flush the file to the OS."""
        if self.index:
            raw = bytes(self.buf)
            packed = self.compress(raw)
            head = (struct.pack("<QQQI", self.c_min, self.c_max, len(raw), zlib.crc32(raw))
                    + _mstr(self.compression) + struct.pack("<Q", len(packed)))
            start = self.offset
            self._out(struct.pack("<BQ", _CHUNK, len(head) + len(packed)) + head)
            self._out(packed)
            end = self.offset
            offsets = []
            for cid, entries in self.index.items():
                offsets.append(struct.pack("<HQ", cid, self.offset))
                self._out(_record(_MESSAGE_INDEX, struct.pack("<HI", cid, 16 * len(entries))
                                  + b"".join(struct.pack("<QQ", t, o) for t, o in entries)))
            self.chunk_indexes.append(_record(
                _CHUNK_INDEX, struct.pack("<QQQQI", self.c_min, self.c_max, start, end - start, 10 * len(offsets))
                + b"".join(offsets) + struct.pack("<Q", self.offset - end) + _mstr(self.compression)
                + struct.pack("<QQ", len(packed), len(raw))))
            self.t_min = self.c_min if self.t_min is None else min(self.t_min, self.c_min)
            self.t_max = self.c_max if self.t_max is None else max(self.t_max, self.c_max)
            self._new_chunk()
        self.file.flush()

    def close(self, version: int, metadata: str) -> None:
        """The last chunk, the rosbag2 metadata record, the summary and the footer."""
        del version
        self.flush()
        meta_start = self.offset
        self._out(_record(_METADATA, _mstr("rosbag2") + _mstrmap({"serialized_metadata": metadata})))
        meta_end = self.offset
        self._out(_record(_DATA_END, struct.pack("<I", 0)))
        summary_start = self.offset
        self.summary_crc = 0
        groups = []
        for op, recs in ((_SCHEMA, self.schemas), (_CHANNEL, self.channels), (_CHUNK_INDEX, self.chunk_indexes)):
            if recs:
                start = self.offset
                for rec in recs:
                    self._out(rec)
                groups.append((op, start, self.offset - start))
        start = self.offset
        self._out(_record(_METADATA_INDEX, struct.pack("<QQ", meta_start, meta_end - meta_start) + _mstr("rosbag2")))
        groups.append((_METADATA_INDEX, start, self.offset - start))
        start = self.offset
        counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(self.counts.items()))
        self._out(_record(_STATISTICS, struct.pack(
            "<QHIIIIQQI", sum(self.counts.values()), len(self.schemas), len(self.channels), 0, 1,
            len(self.chunk_indexes), self.t_min or 0, self.t_max or 0, len(counts)) + counts))
        groups.append((_STATISTICS, start, self.offset - start))
        offsets_start = self.offset
        for group in groups:
            self._out(_record(_SUMMARY_OFFSET, struct.pack("<BQQ", *group)))
        self._out(struct.pack("<BQQQ", _FOOTER, 20, summary_start, offsets_start))
        self.file.write(struct.pack("<I", self.summary_crc) + MCAP_MAGIC)
        self.file.close()

    def abort(self) -> None:
        """Keep what was written (up to the last chunk) and close without a summary."""
        try:
            self.flush()
        finally:
            self.file.close()


# ------------------------------------------------------------------------------------------
# reading: every complete message of a bag, whatever happened to its end
# ------------------------------------------------------------------------------------------
class BagError(UserError):
    """A bag that cannot be read at all: no such path, no bag file in it, not MCAP (nor sqlite3)."""


class BagMessage(NamedTuple):
    topic: str
    msgtype: str
    t_ns: int  # the log (receive) time
    data: bytes  # the CDR payload, as recorded


@dataclass
class BagTopic:
    topic: str
    msgtype: str
    msgdef: str = ""  # the schema's text, as the bag holds it
    schema_encoding: str = "ros2msg"
    qos: str = ""  # the channel's offered_qos_profiles (rosbag2 YAML)
    count: int = 0  # messages read (so far)


@dataclass
class BagReport:
    """What reading a bag found wrong (nothing, for a bag closed normally)."""

    path: str
    messages: int = 0  # messages read
    expected: int | None = None  # messages the file's summary counts (when it has a readable one)
    unreadable_bytes: int = 0  # at the end of the file(s): a cut (or a crash) mid-record
    unreadable_from: int | None = None  # file offset where that tail begins
    lost: int = 0  # messages known to be in damaged chunks (from their message indexes)
    orphans: int = 0  # messages whose channel record is nowhere to be found
    unclosed: bool = False  # no summary: the writer never finished (killed, or the file was cut)
    empty: int = 0  # files of 0 bytes (killed before anything reached the disk)
    problems: list[str] = field(default_factory=list)  # damaged chunks and regions, one note each

    @property
    def damaged(self) -> bool:
        return bool(self.unreadable_bytes or self.lost or self.orphans or self.unclosed or self.empty
                    or self.problems)

    def what(self) -> str:
        """What was recovered, and what was lost where."""
        of = f" of {self.expected}" if self.expected is not None and self.expected != self.messages else ""
        parts = []
        if self.unreadable_bytes:
            parts.append(f"truncated: the last {self.unreadable_bytes} bytes (from offset {self.unreadable_from}) "
                         f"are unreadable")
        elif self.empty:
            parts.append("truncated: the file is empty" if self.empty == 1 else
                         f"truncated: {self.empty} files are empty")
        elif self.unclosed:
            parts.append("truncated: not closed (no summary), nothing cut mid-record")
        parts.extend(self.problems)
        if self.lost:
            parts.append(f"{self.lost} messages lost in damaged chunks")
        if self.orphans:
            parts.append(f"{self.orphans} messages of unknown channels skipped")
        if not parts:
            return f"{self.messages} messages, no damage"
        return f"recovered {self.messages}{of} messages; " + "; ".join(parts)

    def line(self) -> str:
        """One line for a log: the bag and :meth:`what`."""
        return f"bag {self.path}: {self.what()}"


def _bag_files(path: Path) -> tuple[list[Path], bool, dict[str, str]]:
    """(files, mcap, topic types from metadata.yaml) of a bag folder or file; ``mcap`` False: a bag
    for rosbags' AnyReader (sqlite3, file-compressed, ROS 1). A folder's metadata.yaml may be missing
    or stale (a crash): then its .mcap files are the bag."""
    if not path.exists():
        raise BagError(f"bag {path} not found (give a rosbag2 folder, or its .mcap / .db3 file)")
    if path.is_file():  # MCAP by its name or its magic; else for rosbags (.db3, a ROS 1 .bag)
        with path.open("rb") as fh:
            return [path], path.suffix == ".mcap" or fh.read(8) == MCAP_MAGIC, {}
    meta = path / "metadata.yaml"
    listed: list[Path] = []
    types: dict[str, str] = {}
    if meta.exists():
        import yaml

        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            listed = [path / f for f in info.get("relative_file_paths") or []]
            types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"]
                     for t in info.get("topics_with_message_count") or []}
            if info.get("storage_identifier") == "sqlite3" or any(f.suffix != ".mcap" for f in listed):
                return [path], False, types
        except Exception:  # unreadable metadata: the files are what counts
            listed, types = [], {}
    files = [f for f in listed if f.is_file()]
    files += sorted(f for f in path.glob("*.mcap") if f not in files)
    if not files:
        if any(path.glob("*.db3")):
            return [path], False, types
        raise BagError(f"{path} holds no .mcap file (nor a readable metadata.yaml naming one)")
    return files, True, types


def _read_str(data: Any, p: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", data, p)
    end = p + 4 + n
    if end > len(data):
        raise ValueError("string runs past its record")
    return bytes(data[p + 4:end]).decode(), end


def _valid_op(op: int) -> bool:
    return 1 <= op <= 0x0F or op >= 0x80  # MCAP's records and the user-defined range


def _record_at(buf: Any, pos: int, size: int) -> tuple[int, int, int] | None:
    """(opcode, body start, end) of the record at ``pos``, None when none can be there."""
    if size - pos < 9:
        return None
    op, length = struct.unpack_from("<BQ", buf, pos)
    if not _valid_op(op) or pos + 9 + length > size:
        return None
    return op, pos + 9, pos + 9 + length


def _chunk_layout(buf: Any, pos: int, size: int) -> tuple[int, int, int, int, str, int, int] | None:
    """(start time, end time, uncompressed size, crc, compression, data start, data end) of a chunk
    record at ``pos`` whose fields agree with its length, else None."""
    if size - pos < 9 + 40:
        return None
    op, length = struct.unpack_from("<BQ", buf, pos)
    if op != _CHUNK or length < 40 or pos + 9 + length > size:
        return None
    t0, t1, usize, crc, clen = struct.unpack_from("<QQQII", buf, pos + 9)
    if clen > 4:
        return None
    comp = bytes(buf[pos + 41:pos + 41 + clen])
    if comp not in (b"", b"zstd", b"lz4"):
        return None
    (rlen,) = struct.unpack_from("<Q", buf, pos + 41 + clen)
    if 40 + clen + rlen != length:
        return None
    start = pos + 49 + clen
    return t0, t1, usize, crc, comp.decode(), start, start + rlen


def _resync(buf: Any, start: int, size: int) -> int | None:
    """The offset of the next well-formed chunk record after broken framing (None: there is none)."""
    p = start
    while True:
        p = buf.find(b"\x06", p, size)
        if p < 0:
            return None
        layout = _chunk_layout(buf, p, size)
        if layout is not None and layout[0] <= layout[1]:
            end = layout[6]
            if end == size or _valid_op(buf[end]):
                return p
        p += 1


class _Defs:
    """The schemas and channels of one MCAP file as read so far. A definition read under a CRC (in a
    checked chunk, or a checked summary) wins over an unchecked copy (outside chunks), and a copy that
    disagrees with a checked one is a corrupt record, noted."""

    def __init__(self) -> None:
        self.schemas: dict[int, tuple[str, str, str]] = {}
        self.channels: dict[int, BagTopic] = {}
        self.seen: dict[tuple[str, int], Any] = {}
        self.checked: set[tuple[str, int]] = set()
        self.chunks = 0  # chunks the summary counts

    def copy(self) -> "_Defs":
        d = _Defs()
        d.schemas, d.channels, d.seen, d.checked = dict(self.schemas), dict(self.channels), dict(self.seen), set(
            self.checked)
        d.chunks = self.chunks
        return d

    def take(self, kind: str, rid: int, value: Any, checked: bool, report: BagReport, where: str) -> bool:
        """Whether this record of ``kind`` with id ``rid`` is to be used (noting any disagreement)."""
        k = (kind, rid)
        if k in self.seen and self.seen[k] != value and (checked or k in self.checked):
            report.problems.append(f"{where}a {kind} record (id {rid}) outside chunks is corrupt: "
                                   f"its copy under a CRC is used")
        if k not in self.seen or (checked and k not in self.checked):
            self.seen[k] = value
            if checked:
                self.checked.add(k)
            return True
        return False


class BagMessages:
    """The messages of one bag, read straight through its records (:func:`iter_bag_messages`)."""

    def __init__(self, path: str | Path, topics: Iterable[str] | None = None, warn: bool = True):
        self.path = Path(path)
        self.files, self.mcap, self._meta_types = _bag_files(self.path)
        self.wanted = None if topics is None else set(topics)
        self.warn = warn
        self.report = BagReport(str(self.path))
        self.topics: dict[str, BagTopic] = {}
        """Topic -> what the bag says of it. Complete once iterated; before, when :attr:`complete`."""
        self.complete = False
        """True when every file had a readable summary, so :attr:`topics` is complete before reading."""
        self._summaries: dict[Path, _Defs | None] = {}
        self._defs: list[_Defs] = []
        self._stores: dict[str, Any] = {}
        self._used = False
        self._reader: Any = None
        if self.mcap:
            for f in self.files:
                self._summaries[f] = self._summary(f)
            self.complete = all(s is not None for s in self._summaries.values())
            if not self.complete:  # a count for only some of the files says nothing
                self.report.expected = None
        else:
            self._open_rosbags()

    # ---- the summary of an intact file: topics before reading -----------------------------
    def _topic(self, topic: str, msgtype: str, msgdef: str = "", encoding: str = "ros2msg",
               qos: str = "", checked: bool = False) -> BagTopic:
        info = self.topics.get(topic)
        if info is None:
            info = self.topics[topic] = BagTopic(topic, msgtype, msgdef, encoding, qos)
        elif (checked or not info.msgtype) and msgtype:
            info.msgtype, info.msgdef, info.schema_encoding, info.qos = msgtype, msgdef, encoding, qos
        return info

    def _summary(self, f: Path) -> _Defs | None:
        """The schemas and channels in the file's summary section, None when its footer is not intact
        (or the summary's CRC does not match)."""
        import mmap

        size = f.stat().st_size
        if size < 8 + _FOOTER_BYTES:
            return None
        with f.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:8] != MCAP_MAGIC or buf[size - 8:] != MCAP_MAGIC:
                return None
            op, length = struct.unpack_from("<BQ", buf, size - _FOOTER_BYTES)
            s_start, _, crc = struct.unpack_from("<QQI", buf, size - _FOOTER_BYTES + 9)
            if op != _FOOTER or length != 20 or (s_start and not 8 <= s_start <= size - _FOOTER_BYTES):
                return None
            checked = bool(s_start and crc)
            if checked and zlib.crc32(buf[s_start:size - 12]) != crc:
                self.report.problems.append(f"{self._where(f)}summary CRC mismatch (summary unused)")
                return None
            defs = _Defs()
            pos, end = (s_start, size - _FOOTER_BYTES) if s_start else (0, 0)
            expected = None
            try:
                while pos < end:
                    rec = _record_at(buf, pos, end)
                    if rec is None:
                        return None
                    op, a, b = rec
                    if op == _SCHEMA:
                        self._schema(f, buf, a, defs, checked)
                    elif op == _CHANNEL:
                        self._channel(f, buf, a, defs, checked)
                    elif op == _STATISTICS:
                        (expected,) = struct.unpack_from("<Q", buf, a)
                        (defs.chunks,) = struct.unpack_from("<I", buf, a + 22)
                    pos = b
            except (struct.error, ValueError, UnicodeDecodeError):
                return None
        if expected is not None:
            self.report.expected = (self.report.expected or 0) + expected
        return defs

    def _schema(self, f: Path, data: Any, p: int, defs: _Defs, checked: bool) -> int:
        """Parse a schema record's body at ``p``; returns where its fields end."""
        (sid,) = struct.unpack_from("<H", data, p)
        name, p = _read_str(data, p + 2)
        encoding, p = _read_str(data, p)
        text, p = _read_str(data, p)
        if defs.take("schema", sid, (name, encoding, text), checked, self.report, self._where(f)):
            defs.schemas[sid] = (name, encoding, text)
        return p

    def _channel(self, f: Path, data: Any, p: int, defs: _Defs, checked: bool) -> int:
        """Parse a channel record's body at ``p``; returns where its fields end."""
        cid, sid = struct.unpack_from("<HH", data, p)
        topic, p = _read_str(data, p + 4)
        _encoding, p = _read_str(data, p)
        (n,) = struct.unpack_from("<I", data, p)
        meta, p, end = {}, p + 4, p + 4 + n
        while p < end:
            k, p = _read_str(data, p)
            meta[k], p = _read_str(data, p)
        name, enc, text = defs.schemas.get(sid, (self._meta_types.get(topic, ""), "", ""))
        qos = meta.get("offered_qos_profiles", "")
        if p != end:
            raise ValueError("channel metadata overruns its length")
        if defs.take("channel", cid, (topic, name, qos), checked, self.report, self._where(f)):
            defs.channels[cid] = self._topic(topic, name, text, enc, qos, checked)
        return p

    # ---- reading ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[BagMessage]:
        if self._used:
            raise RuntimeError("a bag's messages can be iterated once")
        self._used = True
        if self.mcap:
            for f in self.files:
                yield from self._scan(f)
            # topics only a corrupt (superseded) channel record named
            used = {id(t) for d in self._defs for t in d.channels.values()}
            self.topics = {k: t for k, t in self.topics.items() if t.count or id(t) in used}
        else:
            yield from self._iter_rosbags()
        if self.warn and self.report.damaged:
            import logging

            logging.getLogger("wm_control.data.bags").warning("%s", self.report.line())

    def _where(self, f: Path) -> str:
        return f"{f.name}: " if len(self.files) > 1 else ""

    def _scan(self, f: Path) -> Iterator[BagMessage]:
        import mmap

        rep = self.report
        size = f.stat().st_size
        if size == 0:
            rep.unclosed = True
            rep.empty += 1
            return
        with f.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:8] != MCAP_MAGIC:
                if size < 8 and MCAP_MAGIC.startswith(buf[:size]):
                    rep.unclosed = True
                    rep.unreadable_bytes += size
                    rep.unreadable_from = 0
                    return
                header = _record_at(buf, 8, size)
                if header is None or header[0] != _HEADER or not self._records(f, buf, 8, header[2], _Defs(),
                                                                                  False)[1]:
                    raise BagError(f"{f} is not an MCAP file (it does not begin with the MCAP magic)")
                rep.problems.append(f"{self._where(f)}the MCAP magic at the start is damaged")
            summary = self._summaries.get(f)
            defs = summary.copy() if summary is not None else _Defs()
            self._defs.append(defs)
            pos, data_end, after_damage = 8, None, False
            # Messages outside chunks are kept back until the file shows that it has none in chunks
            # (_LOOSE of them before any chunk): in a chunked file they can only be damaged records
            # (a flipped opcode makes a message of a channel or message-index record).
            chunked, unchunked = defs.chunks > 0, False
            loose: list[tuple[BagTopic, BagMessage]] = []
            ignored = 0
            while pos < size:
                rec = _record_at(buf, pos, size)
                if rec is not None:
                    op, a, b = rec
                    if op == _CHUNK and _chunk_layout(buf, pos, size) is None:
                        rec = None  # a chunk whose fields disagree with its length: the framing is broken
                    elif (pos == 8) != (op == _HEADER):
                        rec = None  # the header, and only the header, comes first
                    elif op in (_HEADER, _SCHEMA, _CHANNEL):
                        if not self._records(f, buf, pos, b, defs, False)[1]:
                            rec = None  # outside chunks, a record that does not parse: its length is suspect
                    elif op == _MESSAGE:
                        m = self._message(buf, a, b, defs)
                        if m is False:
                            rec = None
                        elif chunked and not unchunked:
                            ignored += 1
                        elif m is None:
                            rep.orphans += 1
                        else:
                            loose.append(m)  # type: ignore[arg-type]
                            if unchunked or len(loose) >= _LOOSE:
                                unchunked = True
                                yield from self._accept(loose)
                if rec is None:
                    nxt = _resync(buf, pos + 1, size)
                    if nxt is None:  # the tail: a cut, or a crash mid-write
                        rep.unreadable_bytes += size - pos
                        rep.unreadable_from = pos
                        break
                    rep.problems.append(f"{self._where(f)}record at offset {pos} damaged (broken framing): "
                                        f"{nxt - pos} bytes skipped to the next chunk")
                    pos, after_damage = nxt, True
                    continue
                if op == _CHUNK:
                    if not unchunked:
                        ignored += len(loose)
                        loose.clear()
                    chunked = True
                    raw, checked = self._chunk(f, buf, pos, size)
                    after_damage = raw is None
                    if raw is not None:
                        yield from self._records(f, raw, 0, len(raw), defs, checked, chunk_at=pos)[0]
                elif op == _MESSAGE_INDEX:  # after a damaged chunk: how many messages it held
                    if after_damage and b - a >= 6:
                        rep.lost += struct.unpack_from("<I", buf, a + 2)[0] // 16
                elif op == _DATA_END:
                    data_end = b
                    break
                elif op == _FOOTER:
                    data_end = pos
                    break
                pos = b
            if chunked and not unchunked:
                ignored += len(loose)
            else:
                yield from self._accept(loose)
            if ignored:
                rep.problems.append(f"{self._where(f)}{ignored} message records outside chunks ignored "
                                    f"(in a chunked file: damaged records)")
            if data_end is None:
                rep.unclosed = True
            elif summary is None:
                rep.unclosed = True
                rep.unreadable_bytes += size - data_end
                rep.unreadable_from = data_end
                rep.problems.append(f"{self._where(f)}the summary after the data has no intact footer "
                                    f"(not needed: the data section is complete)")

    def _message(self, data: Any, a: int, b: int, defs: _Defs) -> tuple[BagTopic, BagMessage] | None | bool:
        """(its topic, the message) of a message record's body ``data[a:b]``; None: its channel is
        unknown; False: too short to be one."""
        if b - a < 22:
            return False
        cid, _seq, t_ns = struct.unpack_from("<HIQ", data, a)
        info = defs.channels.get(cid)
        if info is None:
            return None
        return info, BagMessage(info.topic, info.msgtype, t_ns, bytes(data[a + 22:b]))

    def _accept(self, loose: list[tuple[BagTopic, BagMessage]]) -> Iterator[BagMessage]:
        """The messages found outside chunks, now known to be the file's own."""
        for info, m in loose:
            info.count += 1
            self.report.messages += 1
            if self.wanted is None or m.topic in self.wanted:
                yield m
        loose.clear()

    def _chunk(self, f: Path, buf: Any, pos: int, size: int) -> tuple[bytes | None, bool]:
        """The records of the chunk at ``pos`` (None, and a note, when it is damaged), and whether a
        CRC vouched for them."""
        t0, t1, usize, crc, comp, a, b = _chunk_layout(buf, pos, size)  # type: ignore[misc]
        try:
            raw = _decompress(comp, bytes(buf[a:b]))
            if len(raw) != usize:
                raise ValueError(f"{len(raw)} bytes where the chunk says {usize}")
            if crc and zlib.crc32(raw) != crc:
                raise ValueError("CRC mismatch")
        except Exception as exc:  # zstd/lz4 errors, size or CRC mismatch
            span = f", {(t1 - t0) / 1e9:.2f} s" if t1 >= t0 else ""
            self.report.problems.append(f"{self._where(f)}chunk at offset {pos} ({b - pos} bytes{span}) "
                                        f"damaged: {str(exc) or type(exc).__name__}")
            return None, False
        return raw, bool(crc)

    def _records(self, f: Path, data: Any, pos: int, end: int, defs: _Defs, checked: bool,
                 chunk_at: int | None = None) -> tuple[list[BagMessage], bool]:
        """The messages among the schemas, channels and messages in ``data[pos:end]`` (a chunk's records,
        or one record outside chunks), and whether every record parsed. Outside chunks, where no CRC
        vouches for a record, a schema or channel must fill its record exactly (else its length field
        is suspect, and the framing with it)."""
        out: list[BagMessage] = []
        rep = self.report
        n = 0
        while pos < end:
            rec = _record_at(data, pos, end)
            try:
                if rec is None:
                    raise ValueError("record framing broken")
                op, a, b = rec
                if op == _SCHEMA:
                    used = self._schema(f, data, a, defs, checked)
                elif op == _CHANNEL:
                    used = self._channel(f, data, a, defs, checked)
                elif op == _HEADER:
                    _profile, used = _read_str(data, a)
                    _library, used = _read_str(data, used)
                elif op == _MESSAGE:
                    used = b
                    if b - a < 22:
                        raise ValueError("message record too short")
                    cid, _seq, t_ns = struct.unpack_from("<HIQ", data, a)
                    info = defs.channels.get(cid)
                    if info is None:
                        rep.orphans += 1
                    else:
                        info.count += 1
                        n += 1
                        if self.wanted is None or info.topic in self.wanted:
                            out.append(BagMessage(info.topic, info.msgtype, t_ns, bytes(data[a + 22:b])))
                else:
                    used = b
                if used > b or (chunk_at is None and used != b):
                    raise ValueError(f"a record of {b - a} bytes whose fields take {used - a}")
            except (struct.error, ValueError, UnicodeDecodeError) as exc:
                if chunk_at is not None:
                    rep.problems.append(f"{self._where(f)}chunk at offset {chunk_at}: {exc} at byte {pos} "
                                        f"({n} messages kept)")
                rep.messages += n
                return out, False
            pos = b
        rep.messages += n
        return out, True

    # ---- sqlite3 (and file-compressed) bags: rosbags, no recovery ---------------------------
    def _open_rosbags(self) -> None:
        from rosbags.highlevel import AnyReader

        from wm_control.messages import registry

        try:
            self._reader = AnyReader(self.files, default_typestore=registry().store)
            self._reader.open()
        except Exception as exc:
            raise BagError(f"cannot read {self.path} as a rosbag2: {exc}") from None
        for c in self._reader.connections:
            self._topic(c.topic, c.msgtype, c.msgdef.data, "ros2msg" if c.msgdef.format.name == "MSG"
                        else "ros2idl")
        self.report.expected = self._reader.message_count
        self.complete = True

    def _iter_rosbags(self) -> Iterator[BagMessage]:
        r = self._reader
        conns = [c for c in r.connections if self.wanted is None or c.topic in self.wanted]
        try:
            it = r.messages(connections=conns)
            while True:
                try:
                    c, t_ns, raw = next(it)
                except StopIteration:
                    break
                except Exception as exc:  # a cut sqlite file: keep what was read
                    self.report.problems.append(f"reading stopped: {type(exc).__name__}: {exc}")
                    break
                self.topics[c.topic].count += 1
                self.report.messages += 1
                yield BagMessage(c.topic, c.msgtype, t_ns, bytes(raw))
        finally:
            r.close()

    # ---- decoding --------------------------------------------------------------------------
    def typestore(self, msgtype: str, default: Any = None) -> Any:
        """A rosbags typestore defining ``msgtype``: ``default`` (the registry's) when it does, else
        one with the bag's own definition added (a robot's custom message)."""
        if default is None:
            from wm_control.messages import registry

            default = registry().store
        if msgtype in default.fielddefs:
            return default
        if msgtype not in self._stores:
            from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

            info = next((t for t in self.topics.values() if t.msgtype == msgtype and t.msgdef), None)
            if info is None:
                raise KeyError(f"message type {msgtype!r} is unknown and the bag does not define it")
            store = get_typestore(Stores.EMPTY)
            types = dict(default.fielddefs)
            if info.schema_encoding == "ros2idl":
                sep = "=" * 80 + "\n"
                for part in info.msgdef.split(sep)[1:] if info.msgdef.startswith(sep) else [info.msgdef]:
                    types.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
            else:
                types.update(get_types_from_msg(info.msgdef, msgtype))
            store.register(types)
            self._stores[msgtype] = store
        return self._stores[msgtype]

    def deserialize(self, raw: bytes, msgtype: str, default: Any = None) -> Any:
        return self.typestore(msgtype, default).deserialize_cdr(raw, msgtype)


def iter_bag_messages(path: str | Path, topics: Iterable[str] | None = None, warn: bool = True) -> BagMessages:
    """Every complete message of a bag (a rosbag2 folder, with or without its metadata.yaml, or a bare
    .mcap / .db3 file), as :class:`BagMessage` (topic, msgtype, t_ns, CDR bytes) in file order.

    MCAP files are read record by record from the start, never needing their summary: a file cut
    anywhere (a crash, a full disk) yields every message of the chunks before the cut; a damaged chunk
    (bad CRC, undecompressable) is skipped and reading goes on at the next record, or at the next
    well-formed chunk if the framing itself is broken. ``topics``: only these. What was lost is in
    ``.report`` (a :class:`BagReport`), logged as one warning line at the end when ``warn``. sqlite3
    bags go through rosbags' AnyReader. Raises :class:`BagError` when there is no bag to read.
    """
    return BagMessages(path, topics, warn)


def bag_info(path: str | Path) -> dict:
    """Topics, types, message counts and damage of a bag (reads it all: counts are what is readable)."""
    bag = iter_bag_messages(path, warn=False)
    t_min = t_max = None
    for m in bag:
        t_min = m.t_ns if t_min is None else min(t_min, m.t_ns)
        t_max = m.t_ns if t_max is None else max(t_max, m.t_ns)
    rep = bag.report
    return {"bag": str(path), "files": [str(f) for f in bag.files], "messages": rep.messages,
            "duration_s": 0.0 if t_min is None else (t_max - t_min) / 1e9,
            "topics": {t.topic: {"type": t.msgtype, "messages": t.count} for t in bag.topics.values()},
            "damaged": rep.damaged, "report": rep.what()}


def repair_bag(src: str | Path, dst: str | Path, overwrite: bool = False) -> dict:
    """Rewrite every message recoverable from ``src`` into ``dst``, a new rosbag2 folder (indexed MCAP
    with its summary, and metadata.yaml) that any rosbag2 reader opens."""
    from wm_control.messages import registry

    bag = iter_bag_messages(src, warn=False)
    reg = registry()
    skipped: dict[str, str] = {}

    def add(w: BagWriter, info: BagTopic) -> bool:
        if info.topic in w.connections:
            return True
        if info.topic in skipped:
            return False
        try:
            from rosbags.rosbag2.metadata import parse_qos

            qos = parse_qos(info.qos) if info.qos else []
        except Exception:
            qos = []
        try:
            w.add_topic(info.topic, info.msgtype, typestore=bag.typestore(info.msgtype, reg.store), qos=qos)
        except Exception as exc:  # a type neither the distro nor the bag defines
            skipped[info.topic] = f"{type(exc).__name__}: {exc}"
            return False
        return True

    written = 0
    with BagWriter(dst, reg, overwrite=overwrite, flush_s=None) as w:
        for m in bag:
            if add(w, bag.topics[m.topic]):
                w.write_raw(m.topic, m.t_ns, m.data)
                written += 1
        for info in bag.topics.values():  # topics without a recovered message keep their connection
            add(w, info)
        counts = dict(w.counts)
    rep = bag.report
    return {"bag": str(src), "out": str(dst), "messages": written, "topics": counts,
            "damaged": rep.damaged, "report": rep.what(), "skipped_topics": skipped}


# ------------------------------------------------------------------------------------------
# collect: behaviour policies in the simulator -> one MCAP bag per run
# ------------------------------------------------------------------------------------------
@dataclass
class CollectConfig:
    robot: str = DEFAULT_ROBOT
    policy: Literal["expert", "random"] = "expert"
    """The behaviour: the scripted expert (through the IK solution) or uniform random targets."""
    noise: float = 0.0
    """Gaussian noise (rad) on each target (DART-style demonstrations)."""
    gain: float = 1.0
    """Expert: fraction of the way to the IK solution per step (< 1: a slow, low-quality expert)."""
    episodes: int = 10
    episode_s: float = 2.0
    control_rate: float = 50.0
    joint_state_rate: float = 100.0
    camera_rate: float = 30.0
    image_width: int = 96
    image_height: int = 96
    render: bool = True
    seed: int = 0
    goal_region: Literal["full", "half"] = "full"
    """'half': goals with y >= 0 only (a narrow data set)."""
    episode_reset: Literal["goal", "full"] = "goal"
    """'goal': each episode is a new goal from where the arm is (continuous operation, as on a real
    robot and as sim_robot runs); 'full': re-randomise the arm too (Gymnasium-style)."""
    quality: Literal["custom", "expert", "low", "mixed"] = "custom"
    """A named data quality (wm_control.sim.robots.DATA_QUALITY): 'expert' (the noisy expert), 'low' (slow,
    noisy, half the goals), 'mixed' (alternating episodes of the two; index.json names each one's).
    They set the expert's noise, gain and goal region; 'custom': --policy/--noise/--gain/--goal-region."""

    def __post_init__(self) -> None:
        if self.quality not in ("custom", "expert", "low", "mixed"):
            raise ValueError(f"quality must be custom|expert|low|mixed, not {self.quality!r}")
        if self.quality != "custom":
            from wm_control.sim.robots import DATA_QUALITY

            if self.robot not in DATA_QUALITY:
                raise ValueError(f"no data qualities are defined for robot {self.robot!r} (they are for "
                                 f"{sorted(DATA_QUALITY)}); set --noise/--gain/--goal-region instead")
            if self.policy != "expert":
                raise ValueError("a data quality is a setting of the scripted expert: use --policy expert")
        if self.policy not in ("expert", "random"):
            raise ValueError(f"policy must be expert or random, not {self.policy!r}")
        if self.episodes < 1 or self.episode_s <= 0:
            raise ValueError("episodes must be >= 1 and episode_s > 0")
        if self.episode_reset not in ("goal", "full"):
            raise ValueError("episode_reset must be 'goal' or 'full'")
        if self.goal_region not in ("full", "half"):
            raise ValueError("goal_region must be 'full' or 'half'")
        for r in ("control_rate", "joint_state_rate", "camera_rate"):
            if not getattr(self, r) > 0:
                raise ValueError(f"{r} must be > 0")


def _events(period: float, duration: float) -> np.ndarray:
    import numpy as np

    return np.arange(0.0, duration + 1e-9, period)


def collect_episode(arm: Any, policy: Any, cfg: CollectConfig, path: Path, t0: float,
                    reg: MessageRegistry, rng: np.random.Generator, goal_region: str | None = None) -> dict:
    """Run one episode and write its bag. Time stamps are ROS times starting at ``t0``. A robot with an
    object also logs the goal image (at the start) and the object's true position (with each joint state)."""
    goal_region = goal_region or cfg.goal_region
    import numpy as np

    from wm_control.messages import convert as cv

    make = reg.new
    first = arm.total_time == 0.0
    fresh = (lambda: arm.reset(seed=int(rng.integers(2**31)))) if first or cfg.episode_reset == "full" \
        else arm.new_goal
    obs = fresh()
    if goal_region == "half":  # goals on one side (y >= the region centre's y) only
        g = arm.config.goal_region
        centre_y = g[1] if len(g) == 3 else (g[1] + g[4]) / 2
        for _ in range(100):
            if obs.goal[1] >= centre_y:
                break
            obs = arm.new_goal()
    policy.reset(rng)
    names = list(arm.joint_names)
    # one physics "tick" grid at the finest rate; each stream publishes on its own schedule
    dt_js, dt_ctl, dt_cam = 1 / cfg.joint_state_rate, 1 / cfg.control_rate, 1 / cfg.camera_rate
    tick = min(dt_js, dt_ctl)
    n_ticks = int(round(cfg.episode_s / tick))
    next_js = next_ctl = next_cam = 0.0
    with BagWriter(path, reg, overwrite=True, flush_s=None) as bag:  # chunks by size: reproducible bytes
        for topic, typ in ROBOT_TOPICS.items():
            if topic != "/camera/image_raw" or cfg.render:
                bag.add_topic(topic, typ)
        has_object = obs.object is not None
        if has_object:
            for topic, typ in OBJECT_TOPICS.items():
                if topic != "/goal_image" or cfg.render:
                    bag.add_topic(topic, typ)
        bag.write("/goal", t0, cv.make_point(make, t0, obs.goal))
        if has_object and cfg.render:
            bag.write("/goal_image", t0, cv.make_image(make, t0, arm.goal_image()))
        for k in range(n_ticks + 1):
            ts = k * tick
            t = t0 + ts
            obs = arm.get_observation()
            if ts + 1e-9 >= next_js:
                bag.write("/joint_states", t, cv.make_joint_state(make, t, names, obs.q, obs.qd, obs.effort))
                if has_object:
                    bag.write("/sim/ground_truth/object", t, cv.make_point(make, t, obs.object))
                next_js += dt_js
            if cfg.render and ts + 1e-9 >= next_cam:
                bag.write("/camera/image_raw", t, cv.make_image(make, t, arm.render()))
                next_cam += dt_cam
            if k == n_ticks:
                break
            if ts + 1e-9 >= next_ctl:
                target = np.asarray(policy(obs, arm), dtype=np.float64)
                sent = arm.set_position_target(target)
                bag.write("/forward_position_controller/commands", t + 1e-4, cv.make_multiarray(make, sent))
                next_ctl += dt_ctl
            arm.step(tick)
        counts = dict(bag.counts)
    d = float(arm.distance_to_goal())
    return {"bag": str(path), "final_distance": d, "success": d < success_radius(cfg.robot), "messages": counts,
            "start_time": t0, "duration": cfg.episode_s}


def collect(cfg: CollectConfig, out_dir: str | Path, reg: MessageRegistry | None = None,
            progress: bool = True) -> dict:
    """Collect ``cfg.episodes`` bags under ``out_dir`` (``ep_0000`` ...) and an ``index.json``."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np

    from wm_control.messages import registry
    from wm_control.sim import ArmConfig, SimArm, make_policy

    reg = reg or registry()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arm = SimArm(ArmConfig(robot=cfg.robot, image_width=cfg.image_width, image_height=cfg.image_height,
                           render=cfg.render, seed=cfg.seed))
    arm.connect()
    if cfg.quality == "custom":
        kw = {"noise": cfg.noise, "gain": cfg.gain} if cfg.policy == "expert" else {}
        behaviours = {"custom": (make_policy(cfg.policy, seed=cfg.seed, **kw), cfg.goal_region)}
    else:
        from wm_control.sim.robots import DATA_QUALITY

        q = DATA_QUALITY[cfg.robot]
        behaviours = {name: (make_policy("expert", seed=cfg.seed + k, noise=q[name]["noise"], gain=q[name]["gain"]),
                             q[name]["goal_region"])
                      for k, name in enumerate(("expert", "low") if cfg.quality == "mixed" else (cfg.quality,))}
    order = list(behaviours)
    rng = np.random.default_rng(cfg.seed)
    episodes = []
    t0 = 1_700_000_000.0  # a fixed, plausible ROS epoch time: bags are reproducible
    bar = _progress(range(cfg.episodes), "collect", progress)
    try:
        for i in bar:
            name = order[i % len(order)]
            policy, region = behaviours[name]
            ep = collect_episode(arm, policy, cfg, out / f"ep_{i:04d}", t0, reg, rng, goal_region=region)
            ep["behaviour"] = name
            episodes.append(ep)
            t0 += cfg.episode_s + 1.0
    finally:
        arm.disconnect()
    summary = {"config": asdict(cfg), "distro": reg.distro, "episodes": episodes,
               "success_rate": float(np.mean([e["success"] for e in episodes])),
               "mean_final_distance": float(np.mean([e["final_distance"] for e in episodes])),
               "success_radius_m": success_radius(cfg.robot),
               "by_behaviour": {}}
    for name in order:
        ok = [e["success"] for e in episodes if e["behaviour"] == name]
        summary["by_behaviour"][name] = {"episodes": len(ok), "success_rate": float(np.mean(ok))}
    (out / "index.json").write_text(json.dumps(summary, indent=2))
    return summary


def _progress(it: Iterable, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    try:
        from tqdm import tqdm

        return tqdm(it, desc=desc, unit="ep", file=sys.stderr)
    except ImportError:
        return it


# ------------------------------------------------------------------------------------------
# record: live topics -> MCAP
# ------------------------------------------------------------------------------------------
#: topics ``record`` leaves out when it records everything (as before: the log stream)
RECORD_SKIP = ("/rosout",)


@dataclass(frozen=True)
class Publication:
    """One DDS writer of a ROS topic, as discovery reports it (``None``: the QoS policy was not sent)."""

    topic: str
    typename: str
    reliability: str | None = None  # 'reliable' | 'best_effort'
    durability: str | None = None  # 'volatile' | 'transient_local'



class TopicDiscovery:
    """The ROS topics being published, from DDS discovery (the builtin DCPSPublication topic).

    :meth:`poll` never blocks: it takes what discovery has reported since the last call (writers that
    appeared, and writers that went away), so it can run on a timer for as long as one records.
    """

    def __init__(self, participant: Any):
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication

        self.reader = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        self.publications: dict[Any, Publication] = {}  # writer GUID -> what it publishes

    def poll(self) -> list[Publication]:
        """Take the pending discovery samples; returns the writers that appeared since the last poll."""
        from wm_control.messages import ros_type_name
        from wm_control.ros.qos import offered_qos  # record talks to the graph; reading bags does not

        new = []
        while True:
            samples = self.reader.take(N=256)
            for s in samples:
                info = getattr(s, "sample_info", None)
                if info is not None and not info.valid_data:  # the writer is gone
                    self.publications.pop(s.key, None)
                    continue
                name = getattr(s, "topic_name", "") or ""
                typ = ros_type_name(getattr(s, "type_name", "") or "")
                if name.startswith("rt/") and typ:
                    pub = Publication("/" + name[3:].lstrip("/"), typ, *offered_qos(getattr(s, "qos", None)))
                    if self.publications.get(s.key) != pub:
                        self.publications[s.key] = pub
                        new.append(pub)
            if len(samples) < 256:
                return new

    def topics(self) -> dict[str, str]:
        """ROS topic name -> type of every live writer (the first type seen when writers disagree)."""
        found: dict[str, str] = {}
        for pub in self.publications.values():
            found.setdefault(pub.topic, pub.typename)
        return found

    def offered(self, topic: str) -> list[Publication]:
        """The live writers of ``topic``."""
        return [p for p in self.publications.values() if p.topic == topic]


def discover_topics(node: Any, wait: float = 1.0, stop: Callable[[], bool] | None = None) -> dict[str, str]:
    """ROS topic name -> type, from DDS discovery of publications (what ``ros2 topic list -t`` shows).

    Waits ``wait`` s for discovery to settle, or less when ``stop()`` turns true (checked every 50 ms).
    """
    disc = TopicDiscovery(node.context.participant)
    end = time.monotonic() + wait
    while True:
        disc.poll()
        if time.monotonic() >= end or (stop is not None and stop()):
            return disc.topics()
        time.sleep(0.05)


def subscription_qos(topic: str, typename: str, offered: Iterable[Publication] = ()) -> "qos.QoSProfile":  # noqa: F821 (wm_control.ros.qos, imported inside)
    """The QoS ``record`` subscribes with: the profile for the kind of topic (sensor data, latched,
    default), with reliability and durability adapted to what the writers offer, as rosbag2 does:
    reliable only if every writer is, transient local (latched samples) only if every writer is."""
    from wm_control.ros import qos as qosmod  # record talks to the graph; reading bags does not

    base = qosmod.SENSOR_DATA if typename in ("sensor_msgs/msg/Image", "sensor_msgs/msg/JointState") else (
        qosmod.LATCHED if topic in ("/goal", "/wm/estop") else qosmod.DEFAULT)
    offered = [p for p in offered if p.reliability and p.durability]
    if not offered:
        return base
    reliable = all(p.reliability == "reliable" for p in offered)
    latched = all(p.durability == "transient_local" for p in offered)
    return dataclasses.replace(base, reliability="reliable" if reliable else "best_effort",
                               durability="transient_local" if latched else "volatile")


class StopSignals:
    """SIGINT and SIGTERM set a flag (and wake the node) instead of raising, for the ``with`` block.

    The previous handlers come back on exit. Outside the main thread no handlers can be installed:
    then only ``set()`` (or a duration) stops.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.node: Any = None
        self._previous: dict[int, Any] = {}
        self._depth = 0  # re-entrant: the CLI enters it before its slow imports, record() again

    def __enter__(self) -> "StopSignals":
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth:
            return
        for sig, prev in self._previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.set(signum)

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum
        if self.node is not None:
            self.node.shutdown()

    def __call__(self) -> bool:
        return self.signum is not None


class _Recorder:
    """One ``record`` run: subscribes topics into the open bag as discovery reports them."""

    def __init__(self, node: Any, bag: BagWriter, wanted: dict[str, str | None], logger: Any):
        self.node = node
        self.bag = bag
        self.logger = logger
        self.wanted = wanted  # topic -> type (None: take it from discovery); empty: every topic
        self.discovery = TopicDiscovery(node.context.participant)
        self.subscribed: dict[str, str] = {}
        self.failed: set[str] = set()
        self.t0 = time.monotonic()
        self.next_warn = 0.0

    def start(self, poll_s: float, discover_s: float, warn_s: float) -> None:
        """Subscribe what can be subscribed now and arm the discovery, waiting and idle timers."""
        self.t0 = time.monotonic()
        self.next_warn = warn_s
        self.discovery.poll()
        for topic, typ in self.wanted.items():
            if typ:  # TOPIC:TYPE records before a writer appears
                self.subscribe(topic, typ)
        self.poll()
        self.node.create_steady_timer(poll_s, self.poll)
        once = self.node.create_steady_timer(discover_s, lambda: self.report_waiting(once))
        idle = self.node.create_steady_timer(warn_s, lambda: self.warn_idle(idle))

    def poll(self) -> None:
        """Subscribe the topics discovery reports that are wanted and not subscribed yet."""
        self.discovery.poll()
        for topic, typ in sorted(self.discovery.topics().items()):
            if topic in self.subscribed or topic in self.failed:
                continue
            if (topic not in self.wanted) if self.wanted else (topic in RECORD_SKIP):
                continue
            self.subscribe(topic, self.wanted.get(topic) or typ)

    def subscribe(self, topic: str, typename: str) -> None:
        from wm_control.ros.dds import unpad_cdr

        offered = self.discovery.offered(topic)
        profile = subscription_qos(topic, typename, offered)
        try:
            self.bag.add_topic(topic, typename)
            self.node.create_subscription(
                typename, topic,
                lambda data, _info, _t=topic: self.bag.write_raw(_t, time.time_ns(), unpad_cdr(data)),
                profile, raw=True, with_info=True)
        except Exception as exc:  # an unknown type, a type clash: skip the topic, keep recording
            self.failed.add(topic)
            self.logger.warning("cannot record %s [%s]: %s", topic, typename, exc)
            return
        self.subscribed[topic] = typename
        self.logger.info("subscribed to %s [%s] (%s, %s%s)", topic, typename, profile.reliability,
                         profile.durability, ", as offered" if offered else "")

    def drain(self, rounds: int = 100) -> None:
        """Write what has arrived but is not taken yet (a stop ends the spin between two takes)."""
        for _ in range(rounds):
            before = sum(self.bag.counts.values())
            self.node.spin_once(0.0)
            if sum(self.bag.counts.values()) == before:
                return

    def missing(self) -> list[str]:
        """The topics asked for that are not subscribed (nor skipped) yet."""
        return sorted(t for t in self.wanted if t not in self.subscribed and t not in self.failed)

    def report_waiting(self, timer: Any) -> None:
        """Once, ``discover_s`` s in: name the topics given without a type that no one publishes yet."""
        timer.cancel()
        if self.missing():
            self.logger.info("waiting for a publisher on %s (TOPIC:TYPE subscribes before one appears)",
                             ", ".join(self.missing()))

    def warn_idle(self, timer: Any) -> None:
        """On the idle timer, while nothing is subscribed: say so (and which domain we are on), after
        ``warn_s``, 2 ``warn_s``, 4 ``warn_s`` ... s."""
        if self.subscribed:
            timer.cancel()
            return
        elapsed = time.monotonic() - self.t0
        if elapsed < self.next_warn - 1e-3:
            return
        self.next_warn *= 2
        what = f"no publisher on {', '.join(self.missing())}" if self.wanted else "no topics discovered"
        self.logger.warning("nothing to record yet: %s after %.0f s (ROS_DOMAIN_ID=%d)", what, elapsed,
                            self.node.context.domain_id)


def record(out: str | Path, topics: list[str] | None, duration: float | None = None,
           discover_s: float = 1.5, overwrite: bool = False, poll_s: float = 0.1,
           warn_s: float = 5.0, flush_s: float = 1.0, stop: StopSignals | None = None) -> dict:
    """Record topics to an MCAP bag until Ctrl-C, SIGTERM or ``duration`` s, like ``ros2 bag record``.

    ``topics`` are ``TOPIC`` or ``TOPIC:TYPE``; empty: every topic (but ``/rosout``), including ones
    that appear while recording (``-a``). Discovery is polled every ``poll_s`` s; a topic is
    subscribed once it is seen, with the QoS its writers offer; ``TOPIC:TYPE`` at once. A plain
    ``TOPIC`` with no writer after ``discover_s`` s is reported as awaited; while nothing is
    subscribed a warning comes after ``warn_s``, 2 ``warn_s``, 4 ``warn_s`` ... s, and one at the end
    when nothing was recorded.

    The signal handlers are in place before anything slow and the bag is opened next, so a stop at any
    moment (even during start-up) closes a valid, possibly empty, bag and returns normally. Chunks reach
    the file every ``flush_s`` s, so even a SIGKILL leaves every message older than about ``flush_s``
    readable (``wm-control bag repair`` makes such a file a complete bag again).

    Its node is made on the dds backend (:func:`wm_control.ros.api.make_node`) whatever the graph runs
    on, since topics are found in DDS discovery; like every dds node it refuses DDS Security.
    """
    wanted: dict[str, str | None] = {}
    for spec in topics or []:
        topic, _, typ = spec.partition(":")
        wanted[topic] = typ or wanted.get(topic)
    with (stop or StopSignals()) as stop:
        bag = BagWriter(out, overwrite=overwrite, flush_s=flush_s)
        node = None
        try:
            from wm_control.ros.api import make_node
            from wm_control.ros.dds import make_logger

            logger = make_logger("/wm_record")
            if not stop():
                # on the dds backend whatever the graph runs on: topics are found in DDS discovery
                node = stop.node = make_node("wm_record", "dds")
                logger = node.logger
                logger.info("recording %s to %s (Ctrl-C to stop)",
                            ", ".join(wanted) if wanted else "all topics", out)
                rec = _Recorder(node, bag, wanted, logger)
                rec.start(poll_s, discover_s, warn_s)
                node.spin(until=stop, timeout=duration)
                rec.drain()
            _warn_if_empty(logger, bag, wanted)
        finally:
            bag.close()
            if node is not None:
                node.destroy()
    return {"bag": str(out), "messages": bag.counts}


def _warn_if_empty(logger: Any, bag: BagWriter, wanted: dict[str, str | None]) -> None:
    """One warning line when the bag holds no message: which topics were subscribed, or that none were."""
    if sum(bag.counts.values()):
        return
    if bag.connections:
        logger.warning("recorded no messages; subscribed to %s", ", ".join(bag.connections))
    elif wanted:
        logger.warning("recorded no messages; no publisher appeared on %s", ", ".join(wanted))
    else:
        logger.warning("recorded no messages; no topics were found")
