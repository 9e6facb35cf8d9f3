"""``wm-control launch CONFIG.yaml``: start a graph as separate processes on the dds backend.

The graph is the ROS params YAML itself (the same file ``launch/*.launch.py`` hands launch_ros):
every top-level section that names a node starts one process; the node's type is the section name,
or its ``node_type`` parameter when one type runs under several names. ``/**`` sections apply to
all. On Ctrl-C (or SIGTERM) every node gets SIGINT, then SIGTERM, then SIGKILL; if a node dies,
the launcher says which one, its exit code and its last lines of output, and stops the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .ros.args import RosArgsError, load_yaml, normalize_namespace
from .ros.runner import NODE_TYPES


@dataclass
class NodeSpec:
    name: str
    node_type: str
    namespace: str = "/"


@dataclass
class Proc:
    spec: NodeSpec
    popen: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=30))
    ready: threading.Event = field(default_factory=threading.Event)


def graph_from_config(path: str | Path) -> list[NodeSpec]:
    data = load_yaml(path, "launch config")
    if not isinstance(data, dict):
        raise RosArgsError(f"launch config {path}: expected a ROS params YAML (node: ros__parameters: ...)")
    specs = []
    for key, section in data.items():
        key = str(key)
        if "*" in key:
            continue
        if (not isinstance(section, dict) or "ros__parameters" not in section
                or not isinstance(section["ros__parameters"] or {}, dict)):
            raise RosArgsError(f"launch config {path}: section {key!r} needs 'ros__parameters:'")
        params = section.get("ros__parameters") or {}
        ns, _, name = key.rpartition("/")
        node_type = params.get("node_type", name)
        if node_type not in NODE_TYPES:
            raise RosArgsError(f"launch config {path}: node {key!r} has unknown type {node_type!r}; "
                               f"known: {', '.join(sorted(NODE_TYPES))} (set node_type for renamed nodes)")
        specs.append(NodeSpec(name=name, node_type=node_type, namespace=normalize_namespace(ns or "/")))
    if not specs:
        raise RosArgsError(f"launch config {path} names no nodes")
    return specs


class Launcher:
    def __init__(self, config: str | Path, overrides: list[str] | None = None, echo: bool = True,
                 env: dict[str, str] | None = None):
        self.config = str(config)
        self.specs = graph_from_config(config)
        self.overrides = overrides or []  # extra "-p name:=value" for every node
        self.echo = echo
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.procs: list[Proc] = []
        self.failure: str | None = None

    def start(self) -> None:
        for spec in self.specs:
            cmd = [sys.executable, "-m", "wm_control", "run", spec.node_type, "--ros-args",
                   "-r", f"__node:={spec.name}", "-r", f"__ns:={spec.namespace}", "--params-file", self.config]
            for o in self.overrides:
                cmd += ["-p", o]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                 text=True, bufsize=1, start_new_session=True)
            proc = Proc(spec, p)
            threading.Thread(target=self._pump, args=(proc,), daemon=True).start()
            self.procs.append(proc)

    def _pump(self, proc: Proc) -> None:
        assert proc.popen.stdout is not None
        for line in proc.popen.stdout:
            line = line.rstrip("\n")
            proc.tail.append(line)
            if "]: ready" in line:
                proc.ready.set()
            if self.echo:
                print(f"[{proc.spec.name}] {line}", flush=True)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        for p in self.procs:
            while not p.ready.wait(0.1):
                if p.popen.poll() is not None or time.monotonic() > end:
                    self.check()
                    return False
        return True

    def check(self) -> str | None:
        """None while all nodes run; else a message saying which node died and why."""
        for p in self.procs:
            code = p.popen.poll()
            if code is not None and self.failure is None:
                time.sleep(0.2)  # let the pump thread collect the last lines
                why = "\n    ".join(list(p.tail)[-12:]) or "(no output)"
                sig = f" (signal {signal.Signals(-code).name})" if code < 0 else ""
                self.failure = f"node '{p.spec.name}' ({p.spec.node_type}) exited with code {code}{sig}:\n    {why}"
        return self.failure

    def run(self, duration: float | None = None) -> int:
        """Start, then wait for Ctrl-C / a node dying / ``duration`` s; stop everything. Exit code."""
        stop = threading.Event()
        prev = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            end = None if duration is None else time.monotonic() + duration
            while not stop.wait(0.2):
                if self.check():
                    break
                if end is not None and time.monotonic() > end:
                    break
        finally:
            self.stop()
            for s, h in prev.items():
                signal.signal(s, h)
        if self.failure:
            print(f"[launch] {self.failure}", file=sys.stderr, flush=True)
            return 1
        return 0

    def stop(self, timeout: float = 5.0) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs if p.popen.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    os.killpg(p.popen.pid, sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + timeout
            while time.monotonic() < end and any(p.popen.poll() is None for p in alive):
                time.sleep(0.05)
        for p in self.procs:
            p.popen.wait()
