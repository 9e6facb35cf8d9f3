"""Pixels drive the commands: a policy that sees the visual latent reads ``/wm/latent`` of its own visual
bundle, time-matched to the control tick, and holds the arm (a named fallback) when the latent is missing,
stale or another model's."""

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import NodeProcess
from tests.test_planner import NAMES, toy_bundle
from wm_control.control.features import observation_dim, policy_observation
from wm_control.control.policy import BundlePolicy
from wm_control.messages import convert as cv
from wm_control.ros import qos, topics
from wm_control.ros.dds import DdsNode
from wm_control.world.bundle import BundleError, load_bundle, write_bundle

DIM = 4
VISUAL_ID = "ab" * 32
KIND = "joint_trig_goal_xy_latent"
GAIN = 0.1
Q0 = np.array([0.2, -0.3])


class LatentPolicy(torch.nn.Module):
    """delta = GAIN * the first two values at ``at`` (the latent's, or the goal image's latent's): the command
    says which latent it used."""

    def __init__(self, at: int = 2 * len(NAMES) + 2):
        super().__init__()
        self.at = at

    def forward(self, obs):
        return GAIN * obs[:, self.at: self.at + 2]


GOAL_KIND = "joint_trig_goal_image_latent"


def latent_bundle(out: Path, latent: dict | None = None, kind: str = KIND) -> Path:
    src = out.parent / (out.name + "_src")
    src.mkdir(parents=True, exist_ok=True)
    d = observation_dim(kind, len(NAMES), DIM)
    net = LatentPolicy() if kind == KIND else LatentPolicy(2 * len(NAMES) + DIM)  # goal image: its latent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, d),), str(src / "policy.onnx"), dynamo=False,
                          opset_version=17, input_names=["obs"], output_names=["action"],
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}})
    spec = {"inputs": {"obs": {"shape": [-1, d], "dtype": "float32"}},
            "outputs": {"action": {"shape": [-1, 2], "dtype": "float32"}},
            "observation": kind, "action": "delta_position"}
    if latent is not False:
        spec["latent"] = latent or {"bundle_id": VISUAL_ID, "dim": DIM, "frame_rate": 25.0, "bundle": "nowhere"}
    return write_bundle(out, {"policy": (src / "policy.onnx", spec)},
                        robot={"name": "toy", "joint_names": NAMES, "control_rate": 50.0, "max_step": 0.5,
                               "position_limits": [[-3.0, 3.0], [-3.0, 3.0]]})


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    return latent_bundle(tmp_path_factory.mktemp("latent") / "bundle")


def test_observation_of_a_latent_kind_and_the_bundle_policy(lb, tmp_path):
    assert observation_dim(KIND, 2, DIM) == 2 * 2 + 2 + DIM
    assert observation_dim("joint_trig_goal_latent", 2, DIM) == 2 * 2 + 3 + DIM
    with pytest.raises(ValueError, match="latent's dimension"):
        observation_dim(KIND, 2)
    z = np.array([0.5, -1.0, 3.0, 4.0])
    obs = policy_observation(KIND, Q0, None, np.array([0.1, 0.2, 0.3]), z)
    np.testing.assert_allclose(obs[4:6], [0.1, 0.2], rtol=1e-6)  # the goal's x, y
    np.testing.assert_allclose(obs[6:], z, rtol=1e-6)
    pol = BundlePolicy(load_bundle(lb), "cpu")
    assert pol.needs_latent and pol.latent.bundle_id == VISUAL_ID and pol.latent.dim == DIM
    np.testing.assert_allclose(pol.select_action(Q0, np.zeros(2), np.zeros(3), z), Q0 + GAIN * z[:2], atol=1e-6)
    with pytest.raises(ValueError, match="needs the visual latent"):
        pol.select_action(Q0, np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="needs the visual latent"):
        pol.select_action(Q0, np.zeros(2), np.zeros(3), np.zeros(DIM + 1))
    blind = latent_bundle(tmp_path / "blind", latent=False)  # a latent kind, but whose latents?
    with pytest.raises(BundleError, match="does not say whose"):
        BundlePolicy(load_bundle(blind), "cpu")


def test_the_planner_refuses_a_camera_policy_over_an_ensemble_without_the_latent(tmp_path, lb):
    """This ensemble's state has no latent: a camera policy in its bundle is refused at load (it could not
    be rolled forward through the model)."""
    from wm_control.control.planner import Planner, PlannerConfig

    b = toy_bundle(tmp_path / "planner")
    import shutil

    shutil.copy(lb / "policy.onnx", b / "policy.onnx")  # a planner bundle whose policy is the camera policy
    import yaml

    m = yaml.safe_load((b / "manifest.yaml").read_text())
    src = yaml.safe_load((lb / "manifest.yaml").read_text())["graphs"]["policy"]
    graphs = {"ensemble": (b / "ensemble.onnx", {k: v for k, v in m["graphs"]["ensemble"].items() if k != "file"}),
              "policy": (lb / "policy.onnx", {k: v for k, v in src.items() if k != "file"})}
    out = write_bundle(tmp_path / "planner2", graphs, robot=m["robot"], normalizers=m.get("normalizers"),
                       thresholds=m.get("thresholds"))
    with pytest.raises(BundleError, match=r"sees visual bundle abababababab's latent but the ensemble predicts \(q, qd\)"):
        Planner(load_bundle(out), PlannerConfig(device="cpu", threads=1, samples=8))


class LatentRig:
    """Joint states at Q0 (100 Hz, real time), a goal, latents published by the test, commands recorded."""

    def __init__(self):
        self.node = n = DdsNode("latent_rig")
        self.cmds: list[np.ndarray] = []
        self.diag: dict[str, dict] = {}
        n.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                              lambda m: self.cmds.append(np.asarray(m.data, float).copy()),
                              qos.QoSProfile("reliable", "volatile", 1000))
        n.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", self._diag, qos.DIAGNOSTICS)
        self.js = n.create_publisher("sensor_msgs/msg/JointState", "/joint_states", qos.SENSOR_DATA)
        self.lat = topics.LATENT.publisher(n)
        self.goal_lat = topics.GOAL_LATENT.publisher(n)
        n.create_publisher("geometry_msgs/msg/PointStamped", "/goal", qos.LATCHED).publish(
            cv.make_point(n.msg, 0.0, np.array([0.1, 0.1, 0.0])))
        self.latent_kw: dict | None = None
        n.create_timer(0.01, lambda: self.js.publish(cv.make_joint_state(n.msg, n.now(), NAMES, Q0, np.zeros(2))))
        n.create_timer(1 / 30, self._publish_latent)

    def _diag(self, m):
        for s in m.status:
            self.diag[s.name] = {kv.key: kv.value for kv in s.values} | {"_msg": s.message}

    def latent_msg(self, stamp, z, bundle_id=VISUAL_ID):
        m = self.node.msg
        return m("wm_control/msg/LatentState", header=cv.header(m, stamp), bundle_id=bundle_id,
                 latent=np.asarray(z, np.float32), joint_names=list(NAMES), position=Q0, velocity=np.zeros(2),
                 uncertainty=0.0, reset=False)

    def _publish_latent(self):
        kw = self.latent_kw
        if kw is not None:
            self.lat.publish(self.latent_msg(self.node.now() - kw.get("age", 0.0), kw.get("z", Z),
                                             kw.get("bundle_id", VISUAL_ID)))

    def counter(self, key: str) -> int:
        return int(self.diag.get("policy", {}).get(key, 0))

    def run(self, seconds):
        self.node.spin(timeout=seconds)


Z = np.array([0.5, -1.0, 0.0, 0.0])


@pytest.fixture(scope="class")
def latent_follower(lb):  # stopped after its class: its commands must not reach the lock-step test
    with NodeProcess("policy", "-p", f"bundle:={lb}", "-p", "device:=cpu", "-p", "max_latent_age:=0.2",
                     "-p", "track_frames:=false", "-r", "/wm/mode:=/latent_test/mode") as p:
        rig = LatentRig()
        assert rig.node.spin(until=lambda: len(rig.cmds) > 5, timeout=20), p.output()
        yield rig, p
        rig.node.destroy()


class TestLatentFollowing:
    def test_without_a_latent_the_arm_holds_then_the_latent_drives_the_command(self, latent_follower):
        rig, proc = latent_follower
        rig.latent_kw = None
        rig.run(1.2)
        assert np.allclose(rig.cmds[-1], Q0, atol=1e-9)  # held where it is: no latent has come
        assert rig.counter("latent_fallback.missing") > 20, rig.diag
        assert "camera latent missing" in rig.diag["policy"]["_msg"]
        rig.latent_kw = {"z": Z}
        rig.run(0.4)
        start = len(rig.cmds)
        rig.run(0.5)
        np.testing.assert_allclose(np.stack(rig.cmds[start:]), np.repeat((Q0 + GAIN * Z[:2])[None], len(
            rig.cmds) - start, 0), atol=1e-6)  # the latent moved the command
        assert rig.diag["policy"]["latent.bundle_id"] == VISUAL_ID

    @pytest.mark.parametrize("kw,counter", [({"age": 1.0}, "latent_fallback.stale"),
                                            ({"bundle_id": "cd" * 32}, "dropped.latent_model"),
                                            ({"z": np.full(DIM, np.nan)}, "dropped.latent_malformed")])
    def test_a_stale_foreign_or_broken_latent_holds_the_arm(self, latent_follower, kw, counter):
        rig, proc = latent_follower
        rig.latent_kw = {"z": Z}
        rig.run(0.3)
        rig.latent_kw = {"z": 2 * Z, **kw}
        before = rig.counter(counter)
        rig.run(0.4)
        start = len(rig.cmds)
        rig.run(1.2)
        cmds = np.stack(rig.cmds[start:])
        # held where the arm is measured: never the old latent's command, never the bad one's
        np.testing.assert_allclose(cmds, np.repeat(Q0[None], len(cmds), 0), atol=1e-9)
        assert rig.counter(counter) > before + 10, (counter, rig.diag)
        rig.latent_kw = {"z": Z}  # and the next good latent drives it again
        rig.run(0.5)
        np.testing.assert_allclose(rig.cmds[-1], Q0 + GAIN * Z[:2], atol=1e-6)


def test_goal_image_mode_steers_by_the_goal_images_latent(tmp_path):
    """A goal-image policy (no goal point) holds until /wm/goal_latent comes, then follows it; the newest
    goal image's latent is the goal."""
    gb = latent_bundle(tmp_path / "goal_image", kind=GOAL_KIND)
    assert observation_dim(GOAL_KIND, 2, DIM) == 2 * 2 + 2 * DIM
    pol = BundlePolicy(load_bundle(gb), "cpu")
    assert pol.needs_goal_image and pol.needs_latent
    g = np.array([0.3, -0.2, 0.0, 0.0])
    np.testing.assert_allclose(pol.select_action(Q0, np.zeros(2), None, Z, g), Q0 + GAIN * g[:2], atol=1e-6)
    with pytest.raises(ValueError, match="goal image's latent"):
        pol.select_action(Q0, np.zeros(2), None, Z)
    with NodeProcess("policy", "-p", f"bundle:={gb}", "-p", "device:=cpu", "-p", "track_frames:=false",
                     "-r", "/wm/mode:=/goal_image_test/mode") as proc:
        rig = LatentRig()
        try:
            rig.latent_kw = {"z": Z}
            assert rig.node.spin(until=lambda: len(rig.cmds) > 5, timeout=20), proc.output()
            rig.run(1.2)
            assert np.allclose(rig.cmds[-1], Q0, atol=1e-9) and rig.counter("latent_fallback.goal_image_missing") > 10
            for goal in (g, -g):  # a new goal image: the newest latent steers
                rig.goal_lat.publish(rig.latent_msg(rig.node.now(), goal))
                rig.run(0.4)
                np.testing.assert_allclose(rig.cmds[-1], Q0 + GAIN * goal[:2], atol=1e-6, err_msg=proc.output())
        finally:
            rig.node.destroy()


def test_sim_time_acts_on_the_latent_of_the_frame_of_its_instant(lb):
    """Lock-step: the test is the simulator and the world model. Nothing is commanded before the first latent
    (however long the camera chain takes to start). Frames every 2nd tick (25 Hz at 50 Hz); the latent of a
    frame comes 0.1 s (wall) after its state; every command uses the latent of the newest frame at or before
    its instant, never an older one, however late it comes."""
    n = DdsNode("latent_lockstep")
    cmds: list[np.ndarray] = []
    n.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                          lambda m: cmds.append(np.asarray(m.data, float).copy()),
                          qos.QoSProfile("reliable", "volatile", 1000))
    js = n.create_publisher("sensor_msgs/msg/JointState", "/joint_states", qos.SENSOR_DATA)
    clock = n.create_publisher("rosgraph_msgs/msg/Clock", "/clock", qos.CLOCK)
    lat = topics.LATENT.publisher(n)
    n.create_publisher("geometry_msgs/msg/PointStamped", "/goal", qos.LATCHED).publish(
        cv.make_point(n.msg, 0.0, np.array([0.1, 0.1, 0.0])))
    m = n.msg

    def z_of(t):  # the latent of the frame at t says its own time
        return np.array([t, 0.0, 0.0, 0.0], np.float32)

    def latent(t):
        lat.publish(m("wm_control/msg/LatentState", header=cv.header(m, t), bundle_id=VISUAL_ID, latent=z_of(t),
                      joint_names=list(NAMES), position=Q0, velocity=np.zeros(2), uncertainty=0.0, reset=False))

    def state(t):
        js.publish(cv.make_joint_state(m, t, NAMES, Q0, np.zeros(2)))
        clock.publish(m("rosgraph_msgs/msg/Clock", clock=m("builtin_interfaces/msg/Time", **cv.time_fields(t))))

    with NodeProcess("policy", "-p", "use_sim_time:=true", "-p", f"bundle:={lb}", "-p", "device:=cpu",
                     "-p", "latent_period:=0.04", "-p", "latent_wait:=2.0", "-p", "max_latent_age:=0.2",
                     "-p", "track_frames:=false", "-p", "max_joint_state_age:=5.0") as proc:
        n.spin(timeout=1.0)
        t0 = time.monotonic()  # the first state: no command until the camera chain has sent its first latent
        while time.monotonic() - t0 < 3.0:  # (longer than latent_wait)
            state(0.02)
            n.spin(timeout=0.3)
        assert not cmds, proc.output()
        latent(0.0)  # the frame of t = 0
        assert n.spin(until=lambda: bool(cmds), timeout=5.0), proc.output()
        np.testing.assert_allclose(cmds[-1], Q0, atol=1e-6)  # z_of(0) moves nothing
        n.spin(timeout=0.5)
        for i in range(2, 30):
            t = round(i * 0.02, 6)
            before = len(cmds)
            t0 = time.monotonic()
            while True:
                state(t)
                n.spin(timeout=0.1)  # the world model is slow: the frame's latent comes later than its state
                if i % 2 == 0:
                    latent(t)
                if n.spin(until=lambda: len(cmds) > before, timeout=3.0):
                    break
                assert time.monotonic() - t0 < 8, (t, proc.output())
            frame_t = t if i % 2 == 0 else round(t - 0.02, 6)
            np.testing.assert_allclose(cmds[-1], Q0 + GAIN * np.array([frame_t, 0.0]), atol=1e-6,
                                       err_msg=f"tick {t}: {proc.output()[-2000:]}")
    n.destroy()


def test_train_bc_on_camera_latents_records_its_visual_bundle(debug_visual, tmp_path):
    """``train bc --visual``: every step's frame encoded by the visual bundle's encoder (as the world_model
    node does); the policy bundle records that bundle's id and the latent's size, and its policy runs on them."""
    from wm_control.data.dataset import DatasetConfig, load_episodes
    from wm_control.train.bc import attach_latents, export_bc, train_bc
    from wm_control.train.presets import bc_preset
    from wm_control.world.frames import FrameSpec, prepare_frame
    from wm_control.world.stream import FrameEncoder

    ckpt, vis = debug_visual
    data = Path(ckpt).parent / "data"
    cfg = bc_preset("debug", visual=str(vis), observation="joint_trig_goal_latent")
    bc = train_bc(cfg, data, tmp_path / "ckpt")
    bundle = export_bc(bc, tmp_path / "bundle")
    vb = load_bundle(vis)
    pol = BundlePolicy(load_bundle(bundle), "cpu")
    assert pol.latent.bundle_id == vb.id and pol.latent.dim == vb.manifest["visual"]["latent_dim"]
    assert pol.latent.frame_rate == vb.manifest["visual"]["frame_rate"] and pol.latent.bundle == str(vis)
    eps = load_episodes([data], DatasetConfig(rate=50.0))[:1]
    frames = eps[0].frames
    li = attach_latents(eps, vis)
    assert li == pol.latent and eps[0].frames is None
    enc = FrameEncoder(vb, "cpu")
    spec = FrameSpec(enc.size[1], enc.size[0])
    np.testing.assert_allclose(eps[0].latent[7], enc(prepare_frame(frames[7], spec)), atol=1e-6)
    e = eps[0]
    out = pol.select_action(e.q[7], e.qd[7], e.goal[7], e.latent[7])
    assert out.shape == (len(e.joint_names),) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="must see the latent"):
        bc_preset("debug", visual=str(vis))
    with pytest.raises(ValueError, match="needs visual"):
        bc_preset("debug", observation="joint_trig_goal_latent")


def test_verify_checks_the_visual_bundle_a_camera_policy_needs(lb, tmp_path, capsys):
    from wm_control import cli

    assert cli.main(["verify", str(lb)]) == 0
    assert "run world_model with visual bundle " + VISUAL_ID in capsys.readouterr().out  # recorded, not there
    other = toy_bundle(tmp_path / "other")  # a bundle of another id given as the visual one: refused
    assert cli.main(["verify", str(lb), "--visual", str(other)]) == 2
    assert "reads the latents of visual bundle " + VISUAL_ID[:12] in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# The planner over the camera: an ensemble whose state is (q, qd, latent). Member m moves q a fraction
# gain[m] of the way to the target and keeps the latent; the reward is -|q - latent[:2]| (the camera shows
# where to go). Its policy is the latent policy above (q + GAIN * latent[:2]).
# ------------------------------------------------------------------------------------------
class LatentToyEnsemble(torch.nn.Module):
    def __init__(self, gains=(0.5, 0.6, 0.7)):
        super().__init__()
        self.register_buffer("gain", torch.tensor(gains, dtype=torch.float32).reshape(-1, 1, 1))

    def forward(self, state_window, action_window, goal):
        s = state_window[:, :, -1]
        q, z = s[..., :2], s[..., 4:]
        nq = q + self.gain * (action_window[:, :, -1] - q)
        reward = -torch.linalg.vector_norm(nq - z[..., :2], dim=-1) + 0.0 * goal.sum(-1)  # (the goal: an input)
        return torch.cat([nq, (nq - q) / 0.02, z], dim=-1), reward


def latent_planner_bundle(out: Path, visual_id: str = VISUAL_ID) -> Path:
    pol = latent_bundle(out.parent / (out.name + "_policy"),
                        latent={"bundle_id": visual_id, "dim": DIM, "frame_rate": 25.0, "bundle": "nowhere"})
    src = out.parent / (out.name + "_src")
    src.mkdir(parents=True, exist_ok=True)
    M, H, ds = 3, 4, 2 * len(NAMES) + DIM
    names = ["state_window", "action_window", "goal", "next_state", "reward"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LatentToyEnsemble(), (torch.zeros(M, 2, H, ds), torch.zeros(M, 2, H, 2), torch.zeros(M, 2, 3)),
                          str(src / "ensemble.onnx"), dynamo=False, opset_version=17, input_names=names[:3],
                          output_names=names[3:], dynamic_axes={k: {1: "batch"} for k in names})
    pm = load_bundle(pol).manifest
    graphs = {"ensemble": (src / "ensemble.onnx", {
        "inputs": {"state_window": {"shape": [M, -1, H, ds], "dtype": "float32"},
                   "action_window": {"shape": [M, -1, H, 2], "dtype": "float32"},
                   "goal": {"shape": [M, -1, 3], "dtype": "float32"}},
        "outputs": {"next_state": {"shape": [M, -1, ds], "dtype": "float32"}, "reward": {"shape": [M, -1],
                                                                                       "dtype": "float32"}},
        "members": M, "history": H, "state": {"layout": ["q", "qd", "latent"], "latent_dim": DIM},
        "latent": {"bundle_id": visual_id, "dim": DIM, "frame_rate": 25.0, "bundle": "nowhere"}}),
        "policy": (pol / "policy.onnx", {k: v for k, v in pm["graphs"]["policy"].items() if k != "file"})}
    return write_bundle(out, graphs, robot=pm["robot"], normalizers={"ensemble_uncertainty_scale": {"std": [1.0] * ds}},
                        thresholds={"first_step_p99": 1e9})


def test_the_planner_node_plans_from_the_latent_of_the_instant_or_says_why_not(tmp_path):
    """Real time: without a latent every plan is NO_INPUT (``latent_fallback.missing``), a stale one too
    (``.stale``); with the camera's latents the plans head where the latent says (the camera changes the plan)
    and the planner reports the visual bundle it reads; another bundle's latents are dropped."""
    from wm_control.control.planner import Planner, PlannerConfig

    b = latent_planner_bundle(tmp_path / "planner")
    p = Planner(load_bundle(b), PlannerConfig(device="cpu", threads=1, samples=8, horizon=4))
    assert p.latent.bundle_id == VISUAL_ID and p.state_dim == 2 * len(NAMES) + DIM
    with pytest.raises(BundleError, match="cdcdcdcdcdcd's latent but the ensemble predicts visual bundle abab"):
        pol = latent_bundle(tmp_path / "other_policy", latent={"bundle_id": "cd" * 32, "dim": DIM,
                                                                "frame_rate": 25.0})
        bad = load_bundle(b).manifest
        graphs = {"ensemble": (b / "ensemble.onnx", {k: v for k, v in bad["graphs"]["ensemble"].items() if k != "file"}),
                  "policy": (pol / "policy.onnx", {k: v for k, v in load_bundle(pol).manifest["graphs"]["policy"].items()
                                                   if k != "file"})}
        Planner(load_bundle(write_bundle(tmp_path / "mixed", graphs, robot=bad["robot"],
                                         normalizers=bad["normalizers"])), PlannerConfig(device="cpu", samples=8))
    plans: list = []
    with NodeProcess("planner", "-p", f"bundle:={b}", "-p", "device:=cpu", "-p", "samples:=16", "-p", "horizon:=4",
                     "-p", "threads:=1", "-p", "rate:=20.0", "-r", "/wm/plan:=/latent_test/plan") as proc:
        rig = LatentRig()
        rig.node.create_subscription("wm_control/msg/Plan", "/latent_test/plan", plans.append, qos.DEFAULT)
        try:
            assert rig.node.spin(until=lambda: len(plans) > 5, timeout=30), proc.output()
            assert all(m.status == 3 and "camera latent missing" in m.message for m in plans[-3:])
            assert rig.node.spin(until=lambda: "latent_fallback.missing" in rig.diag.get("planner", {}), timeout=5)
            for z in (Z, -Z):
                rig.latent_kw = {"z": z}
                rig.run(0.6)
                last = plans[-1]
                assert last.status == 0, last.message
                first = np.asarray(last.actions).reshape(-1, 2)[0]
                assert np.sign(first - Q0).tolist() == np.sign(z[:2]).tolist(), (z, first)  # toward the latent
            assert rig.diag["planner"]["latent.bundle_id"] == VISUAL_ID
            rig.latent_kw = {"z": Z, "age": 1.0}
            rig.run(0.6)
            assert plans[-1].status == 3 and "stale" in plans[-1].message
            rig.latent_kw = {"z": Z, "bundle_id": "cd" * 32}
            assert rig.node.spin(until=lambda: int(rig.diag["planner"].get("dropped.latent_model", 0)) > 5, timeout=5)
            assert plans[-1].status == 3  # and without this model's latents: NO_INPUT again
        finally:
            rig.node.destroy()
