"""Start a graph, watch it from outside, stop it: the one harness of demo, eval, replay and the benchmarks.

A :class:`GraphRun` takes a graph (a ROS params YAML path, or the same as a dict, written to a
temporary file), starts it with :class:`~wm_control.ros.launcher.Launcher` (separate processes, its
required / optional nodes, respawns, SIGTERM as Ctrl-C) and watches it through a node of its own made
by :func:`~wm_control.ros.api.make_node`, on the backend the graph runs on (``backend``, else
``WM_BACKEND``, else rclpy when ROS 2 is sourced; the launched nodes are told the same). That node
keeps the latest ``/diagnostics`` status of every node::

    with GraphRun(graph, "wm_eval") as run:        # the watching node; nothing started yet
        run.node.create_subscription(...)           # the program's own topics, before any node runs
        run.start()
        if not run.wait_ready(60):
            raise RuntimeError(run.failure)
        run.spin(until=lambda: done, timeout=30)    # False on timeout, or when the graph failed
    # every node stopped (SIGINT, SIGTERM, SIGKILL), the watching node destroyed, the temp file gone

Leaving the block stops everything, also on an exception or Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from wm_control.ros import qos
from wm_control.ros.api import make_node
from wm_control.ros.launcher import Launcher, NodeSpec
from wm_control.ros.runner import choose_backend


class GraphFailure(RuntimeError):
    """The graph could not go on: a required node died, every node did, or it never became ready."""


def _level(value: Any) -> int:
    """A DiagnosticStatus level as an int (rclpy gives a ``byte`` field as one byte of ``bytes``)."""
    return int.from_bytes(value, "little") if isinstance(value, (bytes, bytearray)) else int(value)


class GraphRun:
    """One graph run: the launcher, the watching node (:attr:`node`) and what ``/diagnostics`` said.

    ``graph``: a params YAML path or a dict of its sections; ``name``: the watching node's name;
    ``backend``: as :func:`~wm_control.ros.api.make_node`; ``echo``: print the nodes' output lines;
    ``overrides``: ``-p [node:]name:=value`` rules for the launcher; ``use_sim_time``: the watching
    node's clock. The graph is checked here (:class:`~wm_control.ros.args.RosArgsError`), started by
    :meth:`start`, and stopped by :meth:`close` (the end of the ``with`` block).
    """

    def __init__(self, graph: str | Path | dict, name: str = "wm_graph_run", *, backend: str | None = None,
                 echo: bool = False, overrides: list[str] | None = None, use_sim_time: bool = False):
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # before the nodes copy the env
        self.backend = choose_backend(backend)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._started = self._closed = False
        #: node name ("ns/name", as DiagnosticStatus names it) -> {key: value, "_msg": message, "_level": level}
        self.diagnostics: dict[str, dict[str, Any]] = {}
        if isinstance(graph, dict):
            self._tmp = tempfile.TemporaryDirectory(prefix="wm_graph_")
            path = Path(self._tmp.name) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(graph))
        else:
            path = Path(graph)
        self.config = str(path)
        node = None
        try:
            self.launcher = Launcher(path, overrides, echo=echo, env={"WM_BACKEND": self.backend})
            node = make_node(name, self.backend, use_sim_time=use_sim_time)
            node.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", self._on_diagnostics,
                                     qos.DIAGNOSTICS)
        except BaseException:
            try:
                if node is not None:
                    node.destroy()
            finally:
                self._remove_tmp()
            raise
        self.node = node

    # ---- the graph --------------------------------------------------------------------------
    @property
    def specs(self) -> list[NodeSpec]:
        """The graph's nodes, in the order of its file."""
        return self.launcher.specs

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.launcher.specs]

    @property
    def pids(self) -> dict[str, int]:
        """Node name -> process id of its current (or last) process."""
        return {p.spec.name: p.popen.pid for p in self.launcher.procs}

    def last_lines(self, n: int = 6) -> dict[str, list[str]]:
        """Node name -> its last ``n`` output lines."""
        return {p.spec.name: list(p.tail)[-n:] for p in self.launcher.procs}

    @property
    def failure(self) -> str | None:
        """None while the graph runs (or before it starts); else why it cannot go on: which required
        node died, with its exit code and last lines, or that every node has exited, or which were
        not ready in time. Checking it also reaps and respawns nodes (see :meth:`Launcher.check`)."""
        return self.launcher.check()

    def start(self) -> "GraphRun":
        """Start every node's process (once); from here SIGTERM raises KeyboardInterrupt, as Ctrl-C."""
        if self._closed:
            raise RuntimeError("this GraphRun is closed")
        if not self._started:
            self._started = True
            self.launcher.start()
        return self

    def wait_ready(self, timeout: float = 60.0, raise_failure: bool = False) -> bool:
        """Until every node says it is ready: True; False when the graph failed or ``timeout`` s passed
        (:attr:`failure` says which nodes and their last line). ``raise_failure``: then raise
        :class:`GraphFailure` ("graph failed to start: ...") instead."""
        ready = self.launcher.wait_ready(timeout)
        if not ready and raise_failure:
            raise GraphFailure(f"graph failed to start: {self.failure}")
        return ready

    # ---- watching ---------------------------------------------------------------------------
    def _on_diagnostics(self, msg: Any) -> None:
        for s in msg.status:
            self.diagnostics[s.name] = ({kv.key: kv.value for kv in s.values}
                                        | {"_msg": s.message, "_level": _level(s.level)})

    def spin(self, until: Callable[[], bool] | None = None, timeout: float | None = None,
             raise_failure: bool = False) -> bool:
        """Run the watching node's callbacks, checking the graph every 0.1 s at most, until ``until()`` is
        true (True), ``timeout`` s pass, the graph fails or the node is shut down (False; then
        :attr:`failure` says what failed). ``raise_failure``: a failed graph raises :class:`GraphFailure`."""
        self.node.spin(until=lambda: (until is not None and until()) or self.failure is not None, timeout=timeout)
        if until is not None and until():
            return True
        failure = self.failure
        if failure and raise_failure:
            raise GraphFailure(failure)
        return False

    # ---- stopping ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every node (SIGINT, then SIGTERM, then SIGKILL; waits for each), destroy the watching node,
        remove the temporary graph file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.launcher.stop()
        finally:
            try:
                self.node.destroy()
            finally:
                self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "GraphRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["GraphFailure", "GraphRun"]
