"""Lock-step with sim time: sim_robot owns /clock and waits for each command, so two runs of the
same graph produce the same trajectory however the CPU is loaded."""

import numpy as np

from wm_control import conversions as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode

from .helpers import NodeProcess


def run_once(tag: str, n_states: int = 120) -> dict:
    node = DdsNode(f"lockstep_watch_{tag}")
    states: dict[float, np.ndarray] = {}
    clocks: list[float] = []
    node.create_subscription("sensor_msgs/msg/JointState", "/joint_states",
                             lambda m: states.__setitem__(round(cv.stamp_sec(m.header.stamp), 6),
                                                          np.asarray(m.position).copy()),
                             qos.QoSProfile("best_effort", "volatile", 1000))
    node.create_subscription("rosgraph_msgs/msg/Clock", "/clock", lambda m: clocks.append(cv.stamp_sec(m.clock)),
                             qos.QoSProfile("best_effort", "volatile", 1000))  # keep every tick we receive
    common = ["-p", "robot:=reacher", "-p", "seed:=7"]
    with NodeProcess("scripted_controller", "-p", "use_sim_time:=true", "-p", "max_input_age:=5.0", *common) as ctl, \
            NodeProcess("sim_robot", "-p", "mode:=lockstep", "-p", "camera_rate:=10.0", "-p", "image_width:=32",
                        "-p", "image_height:=32", "-p", "episode_s:=1.0", *common) as sim:
        ok = node.spin(until=lambda: len(states) >= n_states, timeout=60)
        out = sim.output() + ctl.output()
    node.destroy()
    assert ok, out
    return {"states": states, "clocks": clocks, "log": out}


def test_lockstep_is_deterministic_and_advances_by_control_period():
    a = run_once("a")
    b = run_once("b")
    clocks = np.array(a["clocks"])
    steps = np.diff(clocks)
    assert np.allclose(steps[steps > 0], 0.02, atol=1e-6)  # one control period per command
    assert np.all(steps >= 0)
    common = sorted(set(a["states"]) & set(b["states"]))
    assert len(common) >= 100
    diffs = [np.abs(a["states"][t] - b["states"][t]).max() for t in common]
    assert max(diffs) < 1e-9, f"runs differ by up to {max(diffs)} rad"
    # the arm really moved toward its goals (not a trivially identical standstill)
    qs = np.stack([a["states"][t] for t in common])
    assert np.abs(qs[-1] - qs[0]).max() > 0.05
    assert "lockstep_timeouts" not in a["log"]
