"""Lock-step with sim time: sim_robot owns /clock and waits for each command, so two runs of the
same graph produce the same trajectory however the CPU is loaded."""

import numpy as np

from tests.helpers import NodeProcess
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.dds import DdsNode


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


class _FakeNode:
    """Just what ControlTick needs: sim time, a timer we fire by hand, a clock we set."""

    use_sim_time = True

    def __init__(self):
        import logging

        self.t = 0.0
        self.timer = None
        self.logger = logging.getLogger("fake")

    def create_timer(self, period, cb):
        self.timer = cb
        return cb

    def now(self):
        return self.t


def test_control_tick_acts_again_when_the_simulator_reannounces_its_instant(monkeypatch):
    """A lock-step simulator re-publishes the state of its first instant until a command arrives; if our
    first command was lost, the tick must act on that instant again (else both wait for ever), but
    never twice per instant otherwise."""
    import wm_control.ros.api as api

    wall = [100.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: wall[0])
    node, acts = _FakeNode(), []
    tick = api.ControlTick(node, 50.0, lambda: acts.append(node.t), resend_after=0.25)
    tick.on_state(0.0)  # first state: act on it
    assert acts == [0.0]
    node.timer()
    tick.on_state(0.0)  # the same state again at once (e.g. a duplicate): no second act
    assert acts == [0.0] and tick.resent == 0
    wall[0] += 0.5
    tick.on_state(0.0)  # re-announced 0.5 s later: the simulator never got our command
    assert acts == [0.0, 0.0] and tick.resent == 1
    node.t = 0.02  # it got it and advanced: one act at the new instant, as before
    node.timer()
    tick.on_state(0.02)
    assert acts == [0.0, 0.0, 0.02]
    wall[0] += 0.1
    tick.on_state(0.0)  # an old instant arriving late never re-acts
    node.timer()
    assert acts == [0.0, 0.0, 0.02] and tick.resent == 0 + 1


def test_closed_loop_gives_up_on_a_run_that_stops_finishing_episodes_not_on_a_slow_one(debug_bc):
    """The eval's watchdog is on progress: episodes that keep finishing may take as long as they take; a run in
    which none finishes within the limit fails with a line that says so (and how far it got)."""
    import pytest

    from wm_control.eval.closed_loop import run_episodes

    r = run_episodes(str(debug_bc[1]), 3, episode_s=0.4, device="cpu", timeout_s=20)
    assert r["episodes"] == 3
    with pytest.raises(RuntimeError, match=r"no episode finished in 4 s \(0/1 done\)"):
        run_episodes(str(debug_bc[1]), 1, episode_s=3600.0, device="cpu", timeout_s=4)  # lock-step: never in 4 s
