"""``wm-control launch CONFIG.yaml``: start a graph as separate processes on the dds backend.

The graph is the ROS params YAML itself (the same file ``launch/*.launch.py`` hands launch_ros):
every top-level section that names a node starts one process; the node's type is the section name,
or its ``node_type`` parameter when one type runs under several names. ``/**`` sections apply to
all. A node section holds only ``ros__parameters`` (anything beside it is an error, as in rcl).

Launch attributes sit in the node's parameters under ``launch:`` (ROS flattens them to undeclared
parameters ``launch.required`` etc., which nodes ignore, so the file still works for launch_ros):

``required`` (bool; default: true for the ``policy`` type, false for the others)
    its exit stops the graph, and the launcher exits 1 naming it, its exit code and last lines
    (launch_ros ``on_exit=Shutdown``);
``respawn`` (bool, default false), ``respawn_delay`` (s, default 1.0), ``respawn_max`` (default 5)
    restart it when it exits, at most ``respawn_max`` times; after that it counts as dead;
``remappings`` (list of ``from:=to``, default none)
    topic remappings, given to the node as ``--ros-args -r from:=to`` (launch_ros ``remappings=``):
    how one graph file drives a robot whose topics have other names.

An optional node that dies is reported on stderr (name, exit code, last lines) and the rest keep
running; when every node is gone the launcher exits. ``-p name:=value`` goes to every node,
``-p node:name:=value`` to that node only (``-p world_model:launch.respawn:=false`` works too).

On Ctrl-C (or SIGTERM) every node gets SIGINT, then SIGTERM, then SIGKILL (a second Ctrl-C skips to
the next one). Each node also gets SIGTERM when the launcher dies, even by SIGKILL (Linux: the
parent-death signal; the nodes are started, and respawned, from the thread that calls
:meth:`Launcher.start` / :meth:`Launcher.check`, and get it when that thread ends). From
:meth:`Launcher.start` to :meth:`Launcher.stop`, SIGTERM to a program using it (replay, eval, demo)
raises :class:`KeyboardInterrupt` as Ctrl-C does (where SIGTERM had its default action and the
launcher lives in the main thread), so the program's ``finally: launcher.stop()`` runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wm_control.ros.args import (
    LAUNCH_PREFIX,
    RosArgsError,
    flatten_params,
    match_node_key,
    normalize_namespace,
    params_sections,
    parse_value,
    split_param_rule,
)
from wm_control.ros.runner import NODE_TYPES

#: node types whose exit stops the graph unless their section says ``launch: {required: false}``
REQUIRED_BY_DEFAULT = frozenset({"policy"})
LAUNCH_ATTRS = ("required", "respawn", "respawn_delay", "respawn_max", "remappings")


@dataclass
class NodeSpec:
    name: str
    node_type: str
    namespace: str = "/"
    required: bool = False
    respawn: bool = False
    respawn_delay: float = 1.0
    respawn_max: int = 5
    params: list[str] = field(default_factory=list)  # "name:=value" from -p for this node
    remappings: list[str] = field(default_factory=list)  # "from:=to", as -r

    @property
    def fq_name(self) -> str:
        return self.namespace.rstrip("/") + "/" + self.name


@dataclass
class Proc:
    spec: NodeSpec
    popen: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=30))
    ready: threading.Event = field(default_factory=threading.Event)
    pump: threading.Thread | None = None
    respawns: int = 0
    respawn_at: float | None = None  # monotonic time of the pending respawn
    gone: bool = False  # exited for good (not to be respawned)
    code: int | None = None  # last exit code


def _set_launch_attr(spec: NodeSpec, name: str, value: Any, where: str) -> None:
    attr = name[len(LAUNCH_PREFIX) + 1:] if name.startswith(LAUNCH_PREFIX + ".") else ""
    if attr not in LAUNCH_ATTRS:
        raise RosArgsError(f"{where}: unknown launch attribute {name!r} for node {spec.name!r}; "
                           f"known: {', '.join(f'{LAUNCH_PREFIX}.{a}' for a in LAUNCH_ATTRS)}")
    if attr == "remappings":
        if not isinstance(value, list) or not all(isinstance(r, str) and ":=" in r and r.split(":=", 1)[0]
                                                  and r.split(":=", 1)[1] for r in value):
            raise RosArgsError(f"{where}: {name} of node {spec.name!r} must be a list of 'from:=to', got {value!r}")
        value = list(value)
    elif attr in ("required", "respawn"):
        if not isinstance(value, bool):
            raise RosArgsError(f"{where}: {name} of node {spec.name!r} must be true or false, got {value!r}")
    elif attr == "respawn_delay":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RosArgsError(f"{where}: {name} of node {spec.name!r} must be seconds >= 0, got {value!r}")
        value = float(value)
    elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RosArgsError(f"{where}: {name} of node {spec.name!r} must be a whole number >= 0, got {value!r}")
    setattr(spec, attr, value)


def graph_from_config(path: str | Path, overrides: list[str] | None = None) -> list[NodeSpec]:
    """The nodes of a launch config, with their launch attributes and their share of ``-p`` overrides."""
    sections = params_sections(path, "launch config")
    specs = []
    for key, params in sections.items():
        if "*" in key:
            continue
        ns, _, name = key.rpartition("/")
        node_type = params.get("node_type", name)
        if node_type not in NODE_TYPES:
            raise RosArgsError(f"launch config {path}: node {key!r} has unknown type {node_type!r}; "
                               f"known: {', '.join(sorted(NODE_TYPES))} (set node_type for renamed nodes)")
        spec = NodeSpec(name=name, node_type=str(node_type), namespace=normalize_namespace(ns or "/"),
                        required=node_type in REQUIRED_BY_DEFAULT)
        # launch attributes: wildcard sections first, then the node's own (as parameters resolve)
        matching = [k for k in sections if "*" in k and match_node_key(k, spec.name, spec.namespace)] + [key]
        for k in matching:
            for pname, value in flatten_params(sections[k]).items():
                if pname == LAUNCH_PREFIX or pname.startswith(LAUNCH_PREFIX + "."):
                    _set_launch_attr(spec, pname, value, f"launch config {path}, section {k!r}")
        specs.append(spec)
    if not specs:
        raise RosArgsError(f"launch config {path} names no nodes (format: <node>: ros__parameters: {{...}})")
    for rule in overrides or []:
        node, pname, raw = split_param_rule(rule)
        targets = specs if node is None else [s for s in specs if match_node_key(node, s.name, s.namespace)]
        if not targets:
            raise RosArgsError(f"-p {rule}: no node {node!r} in {path}; known nodes: "
                               f"{', '.join(s.fq_name.lstrip('/') for s in specs)}")
        for s in targets:
            if pname == LAUNCH_PREFIX or pname.startswith(LAUNCH_PREFIX + "."):
                _set_launch_attr(s, pname, parse_value(raw), f"-p {rule}")
            else:
                s.params.append(f"{pname}:={raw}")
    return specs


def _parent_death_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    pr_set_pdeathsig, sigterm, parent = 1, int(signal.SIGTERM), os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before the prctl: no signal would come
            os._exit(1)

    return preexec


def _sigterm_interrupts(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


class Launcher:
    def __init__(self, config: str | Path, overrides: list[str] | None = None, echo: bool = True,
                 env: dict[str, str] | None = None):
        self.config = str(config)
        self.overrides = list(overrides or [])  # "-p [node:]name:=value"
        self.specs = graph_from_config(config, self.overrides)
        self.echo = echo
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.procs: list[Proc] = []
        self.failure: str | None = None
        self._stopping = False
        self._sigterm_installed = False

    def command(self, spec: NodeSpec) -> list[str]:
        cmd = [sys.executable, "-m", "wm_control", "run", spec.node_type, "--ros-args",
               "-r", f"__node:={spec.name}", "-r", f"__ns:={spec.namespace}", "--params-file", self.config]
        for r in spec.remappings:
            cmd += ["-r", r]
        for p in spec.params:
            cmd += ["-p", p]
        return cmd

    def _spawn(self, proc: Proc | None, spec: NodeSpec) -> Proc:
        """Start the node's process (a new :class:`Proc`, or the next life of ``proc``) and its output pump."""
        popen = subprocess.Popen(self.command(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                 text=True, bufsize=1, start_new_session=True, preexec_fn=_parent_death_preexec())
        if proc is None:
            proc = Proc(spec, popen)
            self.procs.append(proc)  # at once: stop() must see every process started
        else:
            proc.popen, proc.ready = popen, threading.Event()
            proc.tail.clear()
        proc.pump = threading.Thread(target=self._pump, args=(proc, popen, proc.ready), daemon=True,
                                     name=f"launch-{spec.name}")
        proc.pump.start()
        return proc

    def start(self) -> None:
        self._stopping = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _sigterm_interrupts)  # SIGTERM: like Ctrl-C, so `finally` stops us
            self._sigterm_installed = True
        try:
            for spec in self.specs:
                self._spawn(None, spec)
        except BaseException:
            self.stop()
            raise

    def _pump(self, proc: Proc, popen: subprocess.Popen, ready: threading.Event) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            line = line.rstrip("\n")
            proc.tail.append(line)
            if "]: ready" in line:
                ready.set()
            if self.echo:
                print(f"[{proc.spec.name}] {line}", flush=True)

    @staticmethod
    def _say(msg: str) -> None:
        print(f"[launch] {msg}", file=sys.stderr, flush=True)

    def _describe(self, p: Proc, code: int) -> str:
        why = "\n    ".join(list(p.tail)[-12:]) or "(no output)"
        sig = ""
        if code < 0:
            try:
                sig = f" (signal {signal.Signals(-code).name})"
            except ValueError:
                sig = f" (signal {-code})"
        return f"node '{p.spec.name}' ({p.spec.node_type}) exited with code {code}{sig}:\n    {why}"

    def _exited(self, p: Proc, code: int) -> None:
        if p.pump is not None:
            p.pump.join(timeout=2.0)  # its last lines (the pipe closes when the process is gone)
        p.code = code
        s = p.spec
        what = self._describe(p, code)
        if s.respawn and p.respawns < s.respawn_max:
            p.respawn_at = time.monotonic() + s.respawn_delay
            self._say(f"{what}\n[launch] respawning '{s.name}' in {s.respawn_delay:g} s "
                      f"(respawn {p.respawns + 1} of {s.respawn_max})")
            return
        p.gone = True
        after = f" after {p.respawns} respawn{'s' if p.respawns != 1 else ''}" if p.respawns else ""
        if s.required:
            if self.failure is None:
                self.failure = f"{what}\n'{s.name}' is required{after}: stopping the graph"
        else:
            self._say(f"{what}\n[launch] '{s.name}' is optional and stays down{after}; the other nodes keep running")

    def check(self) -> str | None:
        """None while the graph runs; else why it cannot go on (a required node died, or every node).

        Also reports optional nodes that died and respawns nodes that should be (call it regularly,
        from the thread that called :meth:`start`)."""
        if self._stopping:
            return self.failure
        for p in self.procs:
            if p.gone or self.failure is not None:
                continue
            if p.respawn_at is not None:
                if time.monotonic() >= p.respawn_at:
                    p.respawn_at = None
                    p.respawns += 1
                    self._spawn(p, p.spec)
                continue
            code = p.popen.poll()
            if code is not None:
                self._exited(p, code)
        if self.failure is None and self.procs and all(p.gone for p in self.procs):
            codes = ", ".join(f"{p.spec.name} {p.code}" for p in self.procs)
            self.failure = f"every node has exited (exit codes: {codes})"
        return self.failure

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Wait until every node still meant to run says it is ready; False if the graph failed or timed out."""
        end = time.monotonic() + timeout
        while True:
            if self.check():
                return False
            pending = [p for p in self.procs if not p.gone and (p.respawn_at is not None or not p.ready.is_set())]
            if not pending:
                return True
            if time.monotonic() > end:
                tails = "; ".join(f"{p.spec.name}: {(list(p.tail) or ['(no output)'])[-1]}" for p in pending)
                self.failure = f"not ready after {timeout:g} s: {', '.join(p.spec.name for p in pending)} ({tails})"
                return False
            pending[0].ready.wait(0.1)

    def run(self, duration: float | None = None) -> int:
        """Start, then wait for Ctrl-C / the graph failing / ``duration`` s; stop everything. Exit code."""
        stop: list[int] = []  # a plain flag: a signal handler must not take the locks of an Event

        prev = {s: signal.signal(s, lambda signum, _f: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            end = None if duration is None else time.monotonic() + duration
            while not stop:
                if self.check():
                    break
                if end is not None and time.monotonic() > end:
                    break
                time.sleep(0.1)  # the nodes are polled: no wait covers several processes and signals
        finally:
            self.stop()
            for s, h in prev.items():
                signal.signal(s, h)
        if self.failure:
            self._say(self.failure)
            clean = all(p.gone and p.code == 0 for p in self.procs)  # every node finished by itself
            return 0 if clean else 1
        return 0

    def stop(self, timeout: float = 5.0) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to every node still running; waits for all of them.

        Never raises on Ctrl-C / SIGTERM meanwhile: such a signal skips to the next, harder one."""
        self._stopping = True
        hurry: list[int] = []
        prev: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                prev[s] = signal.signal(s, lambda signum, _f: hurry.append(signum))
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                alive = [p for p in self.procs if p.popen.poll() is None]
                if not alive:
                    break
                hurry.clear()
                for p in alive:
                    try:
                        os.killpg(p.popen.pid, sig)
                    except OSError:  # gone meanwhile
                        pass
                end = time.monotonic() + timeout
                while not hurry and time.monotonic() < end and any(p.popen.poll() is None for p in alive):
                    time.sleep(0.05)
            for p in self.procs:
                p.popen.wait()
                if p.pump is not None:
                    p.pump.join(timeout=2.0)
        finally:
            for s, h in prev.items():
                signal.signal(s, h)
            if self._sigterm_installed and signal.getsignal(signal.SIGTERM) is _sigterm_interrupts:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._sigterm_installed = False
