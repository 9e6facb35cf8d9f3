"""GraphRun (wm_control/ros/harness.py): starts a real graph, hears every node's /diagnostics, names the
required node that died, and leaves no process behind however its block ends; make_node picks the backend."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from wm_control.errors import UserError
from wm_control.ros.api import make_node
from wm_control.ros.args import RosArgsError
from wm_control.ros.harness import GraphFailure, GraphRun

# the simulated arm under the scripted expert (as config/expert.yaml), light: no rendering
GRAPH = {
    "/**": {"ros__parameters": {"use_sim_time": False, "launch": {"required": True}}},
    "sim_robot": {"ros__parameters": {"robot": "reacher", "render": False, "episode_s": 2.0}},
    "scripted_controller": {"ros__parameters": {"robot": "reacher", "policy": "expert", "rate": 50.0}},
}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def in_groups(pgids: set[int]) -> list[str]:
    """Processes still in one of these process groups (each node leads its own)."""
    ps = subprocess.run(["ps", "-eo", "pgid=,pid=,args="], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.split() and int(line.split()[0]) in pgids]


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def assert_all_gone(pids: dict[str, int]) -> None:
    assert pids, "no node was started"
    assert wait_for(lambda: not any(alive(p) for p in pids.values()) and not in_groups(set(pids.values())), 20), \
        f"left behind: {in_groups(set(pids.values()))}"


def test_graph_run_hears_every_node_and_names_the_required_one_that_died():
    with GraphRun(GRAPH, "test_harness_watch") as run:
        assert sorted(run.names) == ["scripted_controller", "sim_robot"]
        assert run.pids == {} and run.failure is None  # nothing runs before start()
        run.start()
        assert run.wait_ready(60), run.failure
        pids = run.pids
        assert set(pids) == {"sim_robot", "scripted_controller"}
        assert run.spin(until=lambda: {"sim_robot", "scripted_controller"} <= run.diagnostics.keys(), timeout=30), \
            f"diagnostics heard from {sorted(run.diagnostics)}; {run.failure}"
        sim = run.diagnostics["sim_robot"]
        assert isinstance(sim["_msg"], str) and sim["_level"] in (0, 1, 2, 3)
        assert all(isinstance(v, str) for k, v in sim.items() if not k.startswith("_"))
        assert run.failure is None

        os.kill(pids["scripted_controller"], signal.SIGKILL)
        assert not run.spin(timeout=30)  # returns once the graph has failed, not after 30 s
        failure = run.failure
        assert failure and "node 'scripted_controller' (scripted_controller) exited with code -9" in failure, failure
        assert "SIGKILL" in failure and "'scripted_controller' is required" in failure, failure
        with pytest.raises(GraphFailure, match="scripted_controller"):
            run.spin(timeout=5, raise_failure=True)
        config = Path(run.config)
        assert config.exists()
    assert_all_gone(pids)  # sim_robot too: the graph was stopped
    assert not config.exists()  # the dict graph's temporary file is gone
    assert run.failure == failure  # still says what happened


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError])
def test_leaving_the_block_by_an_exception_stops_the_graph(exc, tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text("sim_robot:\n  ros__parameters:\n    render: false\n    episode_s: 0.0\n")
    pids: dict[str, int] = {}
    with pytest.raises(exc):
        with GraphRun(path, "test_harness_raise") as run:
            run.start()
            pids = run.pids
            assert run.wait_ready(60), run.failure
            raise exc("out of the block")
    assert_all_gone(pids)
    assert path.exists()  # a graph the caller gave is the caller's


def test_a_bad_graph_fails_before_anything_starts():
    with pytest.raises(RosArgsError, match="unknown type 'teleporter'"):
        GraphRun({"teleporter": {"ros__parameters": {}}}, "test_harness_bad")


def test_make_node_chooses_the_backend_as_run_does(monkeypatch):
    monkeypatch.delenv("WM_BACKEND", raising=False)
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)  # no ROS 2 here: auto is dds
    node = make_node("test_harness_auto", use_sim_time=True)
    try:
        assert node.backend == "dds" and node.use_sim_time and node.name == "test_harness_auto"
        assert node.spin(until=lambda: True, timeout=1)
    finally:
        node.destroy()
    with pytest.raises(SystemExit, match="unknown backend 'carrier_pigeon'"):
        make_node("test_harness_bad", "carrier_pigeon")
    monkeypatch.setenv("WM_BACKEND", "rclpy")
    with pytest.raises(SystemExit, match="ROS 2 is not sourced"):
        make_node("test_harness_rclpy")
    with pytest.raises(SystemExit, match="ROS 2 is not sourced"):
        GraphRun(GRAPH, "test_harness_rclpy")  # the graph and its watcher are on one backend
    monkeypatch.setenv("WM_BACKEND", "dds")
    monkeypatch.setenv("ROS_SECURITY_ENABLE", "true")
    with pytest.raises(UserError, match="DDS Security"):
        make_node("test_harness_secure")  # as `wm-control run` refuses it on dds
    monkeypatch.delenv("ROS_SECURITY_ENABLE")
    with GraphRun(GRAPH, "test_harness_env") as run:
        assert run.backend == "dds" and run.launcher.env["WM_BACKEND"] == "dds"  # the nodes are told
