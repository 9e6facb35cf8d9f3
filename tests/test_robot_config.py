"""A foreign robot's bag (written with rosbags' own writer, not ours) through dataset -> train bc -> export
-> replay, and the same bag refused in one line under the wrong robot config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wm_control.robot import RobotConfigError, load_robot_config

ROOT = Path(__file__).resolve().parents[1]
JOINTS = ["shoulder_pan", "elbow"]
CMD_TOPIC = "/arm_controller/joint_trajectory"
IMG_TOPIC = "/camera/image_raw/compressed"


def write_foreign_bag(path: Path, seconds: float = 3.0) -> None:
    """100 Hz joint states (a dropped stretch 0.8-0.9 s, a 1 s gap after 1.5 s), 50 Hz JointTrajectory
    commands, JPEG CompressedImage at 15 Hz, no goal topic."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    Time = T["builtin_interfaces/msg/Time"]
    Duration = T["builtin_interfaces/msg/Duration"]
    Header = T["std_msgs/msg/Header"]

    def hdr(t: float) -> object:
        return Header(stamp=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)) % 10**9), frame_id="")

    def target(t: float) -> np.ndarray:
        return np.array([0.6 * np.sin(0.8 * t), 0.4 * np.cos(0.6 * t)])

    t0 = 100.0
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        js = w.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)
        cmd = w.add_connection(CMD_TOPIC, "trajectory_msgs/msg/JointTrajectory", typestore=ts)
        img = w.add_connection(IMG_TOPIC, "sensor_msgs/msg/CompressedImage", typestore=ts)
        events = []
        for k in range(int(seconds * 100)):
            t = k / 100
            if 0.8 <= t < 0.9 or 1.5 <= t < 2.5:
                continue
            events.append((t, "js"))
        events += [(k / 50, "cmd") for k in range(int(seconds * 50)) if not 1.5 <= k / 50 < 2.5]
        events += [(k / 15, "img") for k in range(int(seconds * 15))]
        for t, what in sorted(events):
            tt = t0 + t
            ns = int(round(tt * 1e9))
            if what == "js":
                q = target(t - 0.04)
                m = T["sensor_msgs/msg/JointState"](header=hdr(tt), name=JOINTS, position=q,
                                                    velocity=np.zeros(2), effort=np.zeros(0))
                w.write(js, ns, ts.serialize_cdr(m, m.__msgtype__))
            elif what == "cmd":
                P = T["trajectory_msgs/msg/JointTrajectoryPoint"]
                pt = P(positions=target(t), velocities=np.zeros(0), accelerations=np.zeros(0),
                       effort=np.zeros(0), time_from_start=Duration(sec=0, nanosec=20_000_000))
                m = T["trajectory_msgs/msg/JointTrajectory"](header=hdr(tt), joint_names=JOINTS, points=[pt])
                w.write(cmd, ns, ts.serialize_cdr(m, m.__msgtype__))
            else:
                rgb = np.full((48, 64, 3), int(40 + 60 * t) % 255, np.uint8)
                ok, jpg = cv2.imencode(".jpg", rgb)
                assert ok
                m = T["sensor_msgs/msg/CompressedImage"](header=hdr(tt), format="rgb8; jpeg compressed bgr8",
                                                        data=np.frombuffer(jpg.tobytes(), np.uint8))
                w.write(img, ns, ts.serialize_cdr(m, m.__msgtype__))


def wm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wm_control", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def foreign_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("foreign") / "bags" / "arm0"
    bag.parent.mkdir(parents=True)
    write_foreign_bag(bag)
    return bag


def test_robot_configs_load_and_errors_name_the_field(tmp_path):
    r = load_robot_config("reacher")
    assert r.joint_names == ["joint0", "joint1"] and r.goal_kind == "topic"
    u = load_robot_config("ur_style")
    assert len(u.joint_names) == 6 and u.command_interface == "trajectory" and u.camera_kind == "compressed"
    assert u.goal_kind == "none" and u.position_limits()[0] == [-6.283] * 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\njoint_names: [a]\ncommand_interface: velocity\n")
    with pytest.raises(RobotConfigError, match="'command_interface'"):
        load_robot_config(bad)
    bad.write_text("name: x\njoint_names: [a, b]\nlimits: {lower: [0, 1, 2]}\n")
    with pytest.raises(RobotConfigError, match="limits.lower"):
        load_robot_config(bad)


def test_foreign_bag_loads_with_its_robot_config(foreign_bag):
    from wm_control.data.dataset import load_episodes

    robot = load_robot_config("two_joint")
    eps = load_episodes([foreign_bag], robot.dataset_config(hindsight_goal=True))
    assert len(eps) == 2  # the 1 s gap splits; the 0.1 s drop does not
    for e in eps:
        assert e.joint_names == JOINTS and e.frames is not None and e.frames.shape[1:] == (48, 64, 3)
        assert np.allclose(e.goal[:, :2], e.q[-1]) and np.all(e.goal[:, 2] == 0)
        assert np.abs(e.action - e.q).max() < 0.2  # trajectory targets read, in joint order


def test_foreign_bag_dataset_train_export_replay(foreign_bag, tmp_path):
    cfg = str(ROOT / "config/robots/two_joint.yaml")
    r = wm("dataset", str(foreign_bag), "--robot-config", cfg)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["episodes"] == 2 and info["joint_names"] == JOINTS
    bundle = tmp_path / "bundle"
    r = wm("train", "bc", "--preset", "debug", "--robot-config", cfg, "--data", str(foreign_bag.parent),
           "--out", str(tmp_path / "run"), "--bundle", str(bundle))
    assert r.returncode == 0, r.stderr[-2000:]
    from wm_control.world.bundle import load_bundle

    b = load_bundle(bundle)
    assert b.joint_names == JOINTS and b.manifest["robot"]["name"] == "two_joint"
    assert b.manifest["robot"]["goal"] == "hindsight"
    # verify against the robot: fits its own config; a tighter robot or another arm is refused in one line
    r = wm("verify", str(bundle), "--robot", cfg)
    assert r.returncode == 0 and "fits robot two_joint" in r.stdout, r.stderr
    tight = tmp_path / "tight.yaml"
    tight.write_text(Path(cfg).read_text().replace("upper: [3.1, 2.6]", "upper: [3.1, 1.0]"))
    r = wm("verify", str(bundle), "--robot", str(tight))
    assert r.returncode == 2 and "joint elbow" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = wm("verify", str(bundle), "--robot", "ur_style")
    assert r.returncode == 2 and "are not the robot's" in r.stderr, r.stderr
    # replay: the stack's topics remapped to the robot's; a score, and how many ticks acted
    rep_json = tmp_path / "replay.json"
    r = wm("replay", str(foreign_bag), "--bundle", str(bundle), "--robot-config", cfg, "--json", str(rep_json),
           "--device", "cpu", "--out", str(tmp_path / "rep"), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(rep_json.read_text())
    assert rep["robot"] == "two_joint" and rep["stack_commands"] > 50
    ticks = rep["ticks"]
    assert ticks["total"] >= rep["stack_commands"] and ticks["acted"] > 0.5 * ticks["total"], ticks
    assert rep["compared"] > 50 and np.isfinite(rep["rmse_rad"])
    assert rep["rmse_rad"] < 0.3  # trajectory commands compared joint by joint, by name


def test_wrong_robot_config_or_bundle_is_refused_in_one_line(foreign_bag, debug_bc):
    """The foreign bag under the Reacher's or the UR arm's config, or with the Reacher's bundle: one
    line each, naming what does not match, before any node starts."""
    def one_line(r: subprocess.CompletedProcess) -> str:
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        return r.stderr

    err = one_line(wm("dataset", str(foreign_bag), "--robot-config", "reacher"))
    assert "joint0" in err or "/forward_position_controller/commands" in err, err
    err = one_line(wm("replay", str(foreign_bag), "--bundle", str(debug_bc[1]), "--robot-config", "ur_style"))
    assert "shoulder_pan_joint" in err and "another robot" in err, err
    err = one_line(wm("replay", str(foreign_bag), "--bundle", str(debug_bc[1]), "--robot-config", "two_joint"))
    assert "joint0" in err and "trained for" in err, err


def test_a_stack_that_never_acted_is_not_scored(foreign_bag, tmp_path):
    """Without the robot config the hindsight-goal bundle gets no goal: every tick holds, and replay
    says so (exit 1, the reasons counted) instead of scoring identical hold commands."""
    cfg = str(ROOT / "config/robots/two_joint.yaml")
    bundle = tmp_path / "bundle"
    r = wm("train", "bc", "--preset", "debug", "--robot-config", cfg, "--data", str(foreign_bag.parent),
           "--out", str(tmp_path / "run"), "--bundle", str(bundle))
    assert r.returncode == 0, r.stderr[-2000:]
    r = wm("replay", str(foreign_bag), "--bundle", str(bundle), "--device", "cpu", "--out", str(tmp_path / "rep"),
           timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["compared"] == 0 and "never acted" in rep["note"]
    assert rep["ticks"]["acted"] == 0 and rep["ticks"]["reasons"]["no_proposal"] == rep["ticks"]["total"] > 50
    assert "never acted" in r.stderr.strip().splitlines()[-1]


def test_foreign_bag_ensemble_and_visual_from_the_robot_config(foreign_bag, tmp_path):
    """train ensemble and train visual read the robot's bags through its config: the bundles carry the
    robot's name and limits, no kinematics without a tip_link, and fit the robot."""
    from wm_control.world.bundle import load_bundle

    cfg = str(ROOT / "config/robots/two_joint.yaml")
    ens = tmp_path / "ens"
    r = wm("train", "ensemble", "--preset", "debug", "--robot-config", cfg, "--regime", "self",
           "--data", str(foreign_bag.parent), "--out", str(tmp_path / "run_ens"), "--bundle", str(ens), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    man = load_bundle(ens).manifest["robot"]
    assert man["name"] == "two_joint" and man["joint_names"] == JOINTS and "kinematics" not in man
    assert man["position_limits"] == [[-3.1, 3.1], [-2.6, 2.6]]
    vis = tmp_path / "vis"
    r = wm("train", "visual", "--preset", "debug", "--robot-config", cfg, "--frame-rate", "15",
           "--data", str(foreign_bag.parent), "--out", str(tmp_path / "run_vis"), "--bundle", str(vis), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held out: 1 from its last episodes" in r.stderr
    b = load_bundle(vis)
    assert b.manifest["robot"]["name"] == "two_joint" and b.joint_names == JOINTS
    assert b.manifest["camera"]["rate"] == 15.0
    for bundle in (ens, vis):
        r = wm("verify", str(bundle), "--robot", cfg)
        assert r.returncode == 0 and "fits robot two_joint" in r.stdout, r.stderr
    r = wm("train", "visual", "--preset", "debug", "--robot-config", cfg)
    assert r.returncode == 2 and "give --data" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # eval visual reads the episodes train visual held out of the robot's folder; visual-state (the simulated
    # task) refuses such a model in one line
    ev = tmp_path / "eval_visual.json"
    r = wm("eval", "visual", "--model", str(tmp_path / "run_vis"), "--json", str(ev), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(ev.read_text())["windows"] > 0
    r = wm("eval", "visual-state", "--model", str(tmp_path / "run_vis"))
    assert r.returncode == 2 and "robot config" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
