"""The push task on the ROS graph: the simulated pusher publishes its goal as a point and as a goal image,
and the object's true position only on the simulator's ground-truth topic; the scripted demonstrator
pushes over the graph from that topic and episodes are scored by the object's distance to the goal."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import NodeProcess
from wm_control.eval.closed_loop import run_episodes
from wm_control.messages import convert as cv
from wm_control.ros import qos, topics
from wm_control.ros.dds import DdsNode
from wm_control.sim.robots import success_radius
from wm_control.world.frames import image_msg_to_rgb


@pytest.fixture
def pusher_sim():  # one test: a second simulator on the domain would disturb the graph test
    with NodeProcess("sim_robot", "-r", "__node:=sim_robot", "-p", "robot:=pusher", "-p", "episode_s:=0.0",
                     "-p", "camera_rate:=10.0", "-p", "image_width:=64", "-p", "image_height:=64") as p:
        yield p


def test_goal_image_and_ground_truth_topics(pusher_sim):
    node = DdsNode("push_topics_listener")
    got = {"img": [], "obj": [], "goal": [], "cam": []}
    try:
        node.create_subscription(topics.GOAL_IMAGE.type, topics.GOAL_IMAGE.name, got["img"].append, qos.LATCHED)
        node.create_subscription(topics.GOAL.type, topics.GOAL.name, got["goal"].append, qos.LATCHED)
        node.create_subscription(topics.GROUND_TRUTH_OBJECT.type, topics.GROUND_TRUTH_OBJECT.name,
                                 got["obj"].append, topics.GROUND_TRUTH_OBJECT.qos)
        node.create_subscription(topics.CAMERA.type, topics.CAMERA.name, got["cam"].append, topics.CAMERA.qos)
        assert node.spin(until=lambda: all(got.values()) and len(got["obj"]) > 3, timeout=20), \
            {k: len(v) for k, v in got.items()}
        goal, obj = cv.point_to_array(got["goal"][-1]), cv.point_to_array(got["obj"][-1])
        assert 0.15 - 1e-6 <= np.linalg.norm(goal[:2] - obj[:2]) <= 0.3 + 1e-6
        goal_img, cam = image_msg_to_rgb(got["img"][-1]), image_msg_to_rgb(got["cam"][-1])
        assert goal_img.shape == cam.shape == (64, 64, 3)
        assert np.abs(goal_img.astype(int) - cam).sum() > 1000  # the object moved to the goal in the picture
        assert -0.35 < obj[2] < -0.2  # on the table (world z), where the camera sees it
    finally:
        node.destroy()


def test_scripted_demonstrator_pushes_over_the_graph():
    """Lock-step, 2 episodes of 5 s: the object (not the tip) ends within the pusher's 5 cm of the goal."""
    r = run_episodes("expert", 2, robot="pusher", episode_s=5.0, device="cpu")
    assert success_radius("pusher") == 0.05
    assert r["success_rate"] == 1.0, r["per_episode"]
    assert r["mean_final_distance"] < 0.05


def test_push_video_carries_the_object_label_for_probes_only(tmp_path):
    """Bags of the push task give the visual model's episodes the object's table xy at each frame (from the
    ground-truth topic, for the linear probe); the model's inputs (frames, commands, joints) are as before."""
    from rosbags.highlevel import AnyReader

    from wm_control.data.bags import CollectConfig, collect
    from wm_control.messages import registry
    from wm_control.train.visual import VisualConfig, load_video, probe_targets

    data = tmp_path / "push"
    collect(CollectConfig(robot="pusher", quality="mixed", episodes=2, episode_s=0.5, image_width=32,
                          image_height=32, camera_rate=10.0, seed=2), data, progress=False)
    cfg = VisualConfig(robot="pusher", image_size=32, frame_rate=10.0, window=4, context=2, horizon=2)
    eps, names = load_video(data, cfg)
    assert len(eps) == 2 and len(names) == 7
    e = eps[0]
    assert e.object is not None and e.object.shape == (len(e.frames), 2)
    with AnyReader([Path(e.source)], default_typestore=registry().store) as r:
        conn = [c for c in r.connections if c.topic == "/sim/ground_truth/object"]
        first = r.deserialize(next(iter(r.messages(connections=conn)))[2], conn[0].msgtype)
    np.testing.assert_allclose(e.object[0], [first.point.x, first.point.y], atol=1e-6)  # the object at rest
    assert probe_targets(e, with_object=True).shape == (len(e.frames), 2 * 7 + 2 + 2)
    assert probe_targets(e).shape == (len(e.frames), 2 * 7 + 2)
    again, _ = load_video(data, cfg)  # from the cache: the labels survive it
    np.testing.assert_array_equal(again[0].object, e.object)


@pytest.fixture(scope="module")
def push_visual(tmp_path_factory):
    """A debug-preset visual model on the push task's mixed video (collected by train visual)."""
    from tests.conftest import train_debug_visual

    root = tmp_path_factory.mktemp("push_visual")
    return train_debug_visual(root, robot="pusher", image_size=32), root / "data"


def test_train_visual_on_push_video_probes_the_object(push_visual):
    import yaml

    ckpt, data = push_visual
    index = json.loads((data / "index.json").read_text())
    assert index["config"]["quality"] == "mixed"  # the widest coverage of object positions
    meta = yaml.safe_load((ckpt / "checkpoint.yaml").read_text())
    pr = meta["metrics"]["encoder"]["probe_r2"]
    assert set(pr) == {"joint_cos_sin", "goal_xy", "object_xy"} and isinstance(pr["object_xy"], float)


def test_eval_push_runs_every_entry_from_the_same_starts(push_visual, tmp_path):
    from wm_control.eval.push import push_report, wilson

    ckpt, data = push_visual
    res = push_report(ckpt, {"mixed": str(data)}, tmp_path / "push.json", episodes=2, bc_iterations=20,
                      episode_s=0.4)
    saved = json.loads((tmp_path / "push.json").read_text())
    assert (tmp_path / "push.png").stat().st_size > 1000
    entries = saved["data"]["mixed"]["entries"]
    assert set(entries) == {"behaviour", "BC from pixels", "BC, true object (privileged)"}
    assert all(e["episodes"] == 2 and len(e["final_distance_m"]) == 2 for e in entries.values())
    assert saved["success_radius_m"] == 0.05 and "object_xy" in saved["probe_r2"]
    assert res["data"]["mixed"]["training_episodes"] > 0
    # 0.4 s is too short to move the object: every entry ends where the same start left it
    starts = {tuple(e["final_distance_m"]) for e in entries.values()}
    assert len(starts) == 1, starts
    lo, hi = wilson(95, 100)
    assert 0.88 < lo < 0.95 < hi < 0.99
    with pytest.raises(ValueError, match="unknown data qualities"):
        push_report(ckpt, {"great": str(data)}, episodes=1)
    two = push_report(ckpt, {"mixed": str(data)}, episodes=2, bc_iterations=10, episode_s=0.4, bc_seeds=(0, 1))
    px = two["data"]["mixed"]["entries"]["BC from pixels"]
    assert px["episodes"] == 4 and [p["seed"] for p in px["per_seed"]] == [0, 1]  # pooled over the two seeds
    assert set(two["data"]["mixed"]["entries"]) == set(entries)


def test_eval_visual_reads_the_object_back_from_predicted_latents(push_visual, tmp_path):
    from wm_control.eval.visual import evaluate_visual

    ckpt, _ = push_visual
    res = evaluate_visual(ckpt, tmp_path / "visual.json", train_missing=False, speed_iters=5)
    pr, H = res["prediction"], res["horizon"]
    for name in ("teacher", "student", "no_motion", "probe_on_true_latents"):
        assert len(pr[name]["object_error_cm_median"]) == H and pr[name][f"object_error_cm_at_{H}"] >= 0
    assert (tmp_path / "visual.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def pixel_bc(push_visual, tmp_path_factory):
    """``train bc --visual`` on the push video: (visual bundle, BC-from-pixels bundle)."""
    from wm_control.train.bc import export_bc, train_bc
    from wm_control.train.presets import bc_preset
    from wm_control.train.visual import export_visual

    ckpt, data = push_visual
    root = tmp_path_factory.mktemp("pixel_bc")
    vis = export_visual(ckpt, root / "visual")
    cfg = bc_preset("debug", robot="pusher", visual=str(vis), observation="joint_trig_goal_xy_latent")
    return vis, export_bc(train_bc(cfg, data, root / "bc"), root / "bc_bundle")


def test_a_policy_from_pixels_drives_the_pusher_over_the_graph(pixel_bc, tmp_path):
    """``eval closed-loop`` on a BC-from-pixels bundle: lock-step, the camera in the loop (sim camera ->
    camera_ingest -> world_model -> /wm/latent -> policy). Every autonomous tick acts on a latent of its
    instant; none is stale or missing; the episodes are scored on the object."""
    from wm_control.eval.closed_loop import check_policy, evaluate

    vis, bundle = pixel_bc
    out = evaluate([str(bundle)], episodes=2, robot="pusher", episode_s=1.0, device="cpu",
                   json_path=str(tmp_path / "eval.json"))
    r = out["policies"][0]
    assert r["episodes"] == 2 and r["visual"] == str(vis.resolve())
    c = {k: float(v) for k, v in r["policy_counters"].items()}
    assert c.get("ticks.policy", 0) >= 40, c
    assert c.get("latent_fallback.stale", 0) == 0 and c.get("latent_fallback.missing", 0) == 0, c
    assert json.loads((tmp_path / "eval.json").read_text())["policies"][0]["policy_counters"]
    with pytest.raises(ValueError, match="pass --visual"):
        check_policy(str(bundle), str(tmp_path / "no_such_bundle"))


def test_bench_loop_times_the_frame_whose_latent_the_command_used(pixel_bc, tmp_path):
    """``bench loop`` on a camera policy runs world_model in the graph (real time) and measures
    camera-to-command on the frames whose latents commands used (not the newest frame)."""
    from wm_control.bench.loop import bench_loop

    vis, bundle = pixel_bc
    res = bench_loop(str(bundle), duration=2.0, warmup=2.0, device="cpu", preview_steps=0)
    assert res["camera_in_the_loop"] and "latent" in res["camera_to_command_measured_on"]
    assert np.isfinite(res["camera_to_command_ms"]["p50"]) and res["camera_to_command_ms"]["p50"] > 0, res
    assert np.isfinite(res["world_model_ms"]["latent"]["p50"]), res
    assert res["control"]["achieved_hz"] > 0


@pytest.fixture(scope="module")
def goal_image_bc(pixel_bc, push_visual, tmp_path_factory):
    """``train bc --visual --observation joint_trig_goal_image_latent`` (debug): the goal-image mode's bundle."""
    from wm_control.train.bc import export_bc, train_bc
    from wm_control.train.presets import bc_preset

    root = tmp_path_factory.mktemp("goal_image_bc")
    cfg = bc_preset("debug", robot="pusher", visual=str(pixel_bc[0]), observation="joint_trig_goal_image_latent")
    return export_bc(train_bc(cfg, push_visual[1], root / "bc"), root / "bundle")


def test_goal_image_mode_from_bags_to_the_graph(pixel_bc, push_visual, goal_image_bc):
    """The goal-image mode: the bags' /goal_image is read per episode (each image once, each step's index),
    encoded as the world model encodes it, and a BC policy on (joints, latent, goal image's latent) runs over
    the graph with no goal point in its observation, steering by /wm/goal_latent."""
    from wm_control.data.dataset import DatasetConfig, load_episodes
    from wm_control.eval.closed_loop import evaluate
    from wm_control.train.bc import attach_latents

    vis, _ = pixel_bc
    _, data = push_visual
    eps = load_episodes([data], DatasetConfig(rate=50.0, goal_image_topic="/goal_image"))
    e = eps[0]
    assert e.goal_images is not None and e.goal_images.shape[1:] == e.frames.shape[1:]
    assert len(e.goal_image_index) == len(e) and e.goal_image_index.max() < len(e.goal_images)
    assert np.abs(e.goal_images[0].astype(int) - e.frames[0]).sum() > 0  # the object at the goal, not the start
    attach_latents(eps[:1], vis)
    assert eps[0].goal_latent.shape == eps[0].latent.shape
    r = evaluate([str(goal_image_bc)], episodes=2, robot="pusher", episode_s=1.0, device="cpu")["policies"][0]
    c = {k: float(v) for k, v in r["policy_counters"].items()}
    assert r["episodes"] == 2 and c.get("ticks.policy", 0) >= 40, c
    assert not any(k.startswith("latent_fallback.") for k in c), c


def test_full_resets_start_episode_k_from_seed_plus_k():
    """sim_robot's full reset starts episode k from the simulator reset seeded seed + k, the starts `eval push`
    uses, so a graph evaluation and an in-process one pair episode by episode."""
    from tests.test_topics import RecordingNode
    from wm_control.ros.api import close_instance, config_from_params
    from wm_control.ros.runner import node_class
    from wm_control.sim import ArmConfig, SimArm

    cls = node_class("sim_robot")
    node = RecordingNode()
    sim = cls(node, config_from_params(cls.Config, {"robot": "pusher", "render": False, "episode_reset": "full",
                                                    "seed": 77, "episode_s": 0.0}))
    try:
        ref = SimArm(ArmConfig(robot="pusher", render=False))
        ref.connect()
        for k in range(3):
            want = ref.reset(seed=77 + k)
            np.testing.assert_allclose(sim.obs.goal, want.goal)
            np.testing.assert_allclose(sim.obs.object, want.object)
            sim.end_episode()
        ref.disconnect()
    finally:
        close_instance(sim, node.logger)


@pytest.fixture(scope="module")
def latent_ensembles(pixel_bc, push_visual, tmp_path_factory):
    """``train ensemble --visual --reward object`` at the debug preset, teacher- and self-forced, on the push
    video: {regime: checkpoint}."""
    from wm_control.train.ensemble import ensemble_preset, train_ensemble

    root = tmp_path_factory.mktemp("latent_ensembles")
    return {regime: train_ensemble(ensemble_preset("debug", robot="pusher", visual=str(pixel_bc[0]), reward="object",
                                                   label_fraction=0.4, regime=regime), push_visual[1], root / regime)
            for regime in ("teacher", "self")}


def test_ensemble_over_joints_and_latent_with_an_object_reward_from_few_labels(pixel_bc, push_visual,
                                                                              latent_ensembles, tmp_path):
    """``train ensemble --visual --reward object``: the state is (q, qd, the camera latent); the reward head
    learns the object's distance to the goal from the labels of a share of the episodes only (the others'
    rewards never enter its loss); no kinematic reach reward is recorded for planners. ``eval world-model``
    reads the object back from the predicted latents through a probe fitted on the training bags."""
    import yaml

    from wm_control.eval.world_model import evaluate_world_model
    from wm_control.train.ensemble import ensemble_preset, make_transitions, object_reward

    vis, _ = pixel_bc
    _, data = push_visual
    with pytest.raises(ValueError, match="--visual"):
        ensemble_preset("debug", robot="pusher", reward="object")
    runs = latent_ensembles
    meta = yaml.safe_load((runs["self"] / "checkpoint.yaml").read_text())
    latent_dim = meta["spec"]["latent_dim"]
    assert latent_dim > 0 and meta["latent"]["bundle"] == str(vis) and meta["latent"]["dim"] == latent_dim
    n_train = meta["data"]["train_episodes"]
    assert meta["data"]["reward"] == "object" and meta["data"]["labelled_episodes"] == max(1, int(0.4 * n_train))
    assert "kinematics" not in meta["robot"]  # the reach reward would score the tip, not the object

    from wm_control.data.dataset import DatasetConfig, load_episodes

    eps = load_episodes([data], DatasetConfig(load_images=False))
    for e in eps:
        e.latent = np.zeros((len(e), 4), np.float32)
    tr = make_transitions(eps, 2, 3, "pusher", labelled={1})
    first, second = len(eps[0]), len(eps[1])
    assert tr.W[:first].sum() == 0 and tr.W[first:first + second].all() and tr.W[first + second:].sum() == 0
    np.testing.assert_allclose(tr.R[first:first + second], object_reward(eps[1]), atol=1e-6)

    res = evaluate_world_model(str(runs["teacher"]), str(runs["self"]), heldout=str(data.parent / "data_heldout"),
                               ood=str(tmp_path / "random"), episodes=2, horizon=5, json_path=str(tmp_path / "wm.json"))
    saved = json.loads((tmp_path / "wm.json").read_text())
    assert saved["object_probe"]["train_episodes"] > 0
    for name in ("self_forced", "teacher_forced"):
        o = saved["models"][name]["object"]
        assert set(o["median_error_cm"]) == {"1", "5"} and all(v >= 0 for v in o["median_error_cm"].values())
        assert o["moving"]["rollouts"] <= saved["models"][name]["rollouts"] and o["vs_probe_on_true_latent_cm"]["1"] >= 0
        if o["moving"]["rollouts"]:  # the rollouts in which the object moves more than 1 cm
            assert o["moving"]["object_stays_cm"]["5"] > 1.0
    assert res["summary"]["object_median_error_cm_5"] >= 0
    assert (tmp_path / "wm.png").stat().st_size > 1000

    # the planner over it, around the policy from pixels: its state windows carry the latent
    from wm_control.control.planner import Planner, PlannerConfig
    from wm_control.train.ensemble import export_ensemble
    from wm_control.world.bundle import load_bundle

    b = load_bundle(export_ensemble(runs["self"], tmp_path / "planner", policy_bundle=pixel_bc[1]))
    assert b.graph("ensemble")["latent"]["bundle_id"] == b.graph("policy")["latent"]["bundle_id"]
    assert b.manifest["robot"].get("kinematics") is None
    planner = Planner(b, PlannerConfig(device="cpu", threads=1, samples=16, horizon=4, lam=1.0))
    assert planner.latent.dim == latent_dim and planner.chain is None  # the reward is the head's: the object's
    n, H = planner.n, planner.history
    e = eps[0]
    z = np.random.default_rng(0).standard_normal((H, latent_dim)).astype(np.float32)
    states = np.concatenate([e.q[:H], np.nan_to_num(e.qd[:H]), z], axis=1)
    plan = planner.plan(states, e.action[:H - 1], e.goal[0], stamp=0.0)
    assert plan.status_name in ("OK", "UNCERTAIN") and plan.actions.shape == (4, n) and np.isfinite(plan.actions).all()
    other = planner.plan(np.concatenate([states[:, :2 * n], z + 3.0], axis=1), e.action[:H - 1], e.goal[0])
    assert abs(other.nominal_return - plan.nominal_return) > 1e-6  # what the camera shows changes the prediction
    with pytest.raises(ValueError, match=f"states \\({H}, {2 * n + latent_dim}\\)"):
        planner.plan(states[:, :2 * n], e.action[:H - 1], e.goal[0])


def test_the_planner_from_pixels_drives_the_pusher_over_the_graph(pixel_bc, latent_ensembles, tmp_path):
    """``eval closed-loop --policy planner:BUNDLE`` where the ensemble's state has the camera's latent: the
    camera is in the loop, the planner plans from the latent of each instant's frame (never without one) and
    the policy node follows the plans."""
    from wm_control.train.ensemble import export_ensemble

    bundle = export_ensemble(latent_ensembles["self"], tmp_path / "planner", policy_bundle=pixel_bc[1])
    r = run_episodes(f"planner:{bundle}", 2, robot="pusher", episode_s=1.0, device="cpu",
                     planner_params={"samples": 16, "horizon": 4, "uncertainty_threshold": 1e9})
    assert r["episodes"] == 2 and "visual" in r
    pc = {k: float(v) for k, v in r["policy_counters"].items()}
    pl = {k: float(v) for k, v in r["planner_counters"].items() if not k.startswith("plan.")}
    ticks = sum(v for k, v in pc.items() if k.startswith("ticks."))
    plans = sum(v for k, v in pl.items() if k.startswith("status.") and k != "status.NO_INPUT")
    assert plans >= 0.9 * ticks > 0, (pc, pl)  # a plan from the camera's latent for (nearly) every tick
    assert not any(k.startswith(("latent_fallback.", "dropped.")) for k in pl), pl
    assert pc.get("ticks.plan", 0) >= 0.8 * ticks, pc  # the commands followed the plans
    iv = r["imagined_vs_real"]  # the object reward's expected distance against the simulator's ground truth
    assert iv["episodes"] == 2 and iv["plans"] >= 0.5 * plans, (iv, plans)
    assert 0 <= iv["imagined_success_rate"] <= 1 and iv["real_mean_distance_m"] > 0
    assert len(iv["per_episode"]) == 2 and all(math.isfinite(e["imagined_distance"]) for e in iv["per_episode"])


def test_imagined_vs_real_pairs_each_plan_with_what_the_object_then_did():
    """The plan's expected return over its horizon, read as the object's distance to the goal, against the
    ground truth over the same instants; windows that leave their episode are not paired; per episode the last
    paired plan gives the imagined success. An optimistic model (expects 1 cm, gets 4 cm) shows optimism."""
    from types import SimpleNamespace as NS

    from wm_control.eval.imagined_vs_real import ImaginedVsReal

    def stamp(t):
        return NS(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))

    def point(t, x, y):
        return NS(header=NS(stamp=stamp(t)), point=NS(x=x, y=y, z=0.0))

    iv, dt, k = ImaginedVsReal(0.05), 0.02, 4
    iv.on_goal(point(0.0, 0.0, 0.0))
    iv.on_goal(point(0.0, 0.0, 0.0))  # the latched goal again: one episode
    iv.on_goal(point(1.0, 1.0, 0.0))
    for j in range(50):  # episode 0: the object stays 4 cm from its goal; episode 1: 2 cm from its own
        iv.on_object(point(j * dt, 0.04, 0.0))
        iv.on_object(point(1.0 + j * dt, 1.02, 0.0))
    for t in [j * dt for j in range(0, 50, 5)] + [1.0 + j * dt for j in range(0, 50, 5)] + [0.95, 1.92]:
        iv.on_plan(NS(header=NS(stamp=stamp(t)), dt=dt, horizon=k, expected_return=-0.01 * k))  # expects 1 cm
    iv.on_plan(NS(header=NS(stamp=stamp(0.5)), dt=dt, horizon=0, expected_return=0.0))  # a NO_INPUT plan
    s = iv.summary(episodes=2)
    # the plan at 0.95 leaves its episode (0.95 + 4 x 0.02 > 1.0); the one at 1.92 has no sample at 2.0
    assert s["plans"] == 20 and s["episodes"] == 2
    assert s["imagined_mean_distance_m"] == pytest.approx(0.01)
    assert s["real_mean_distance_m"] == pytest.approx(0.03)
    assert s["optimism_m"] == pytest.approx(0.02)
    assert s["imagined_success_rate"] == 1.0 and s["real_success_rate_last_window"] == 1.0
    assert [e["real_distance"] for e in s["per_episode"]] == pytest.approx([0.04, 0.02])
    assert ImaginedVsReal(0.05).summary(2) is None  # nothing heard: nothing claimed


def test_the_planner_plans_to_a_goal_image_by_the_energy_to_its_latent(goal_image_bc, latent_ensembles, tmp_path):
    """V-JEPA 2-AC's setting: a bundle whose policy reads the goal image's latent plans with the energy (the
    predicted latent's distance to the goal image's, in data spreads), never to a point: a point is refused,
    a goal latent 5 spreads away costs what it should, and over the graph the planner plans from
    /wm/goal_latent and the policy node follows (no imagined-vs-real pairing: the return is no distance)."""
    from wm_control.control.planner import Planner, PlannerConfig
    from wm_control.train.ensemble import export_ensemble

    bundle = export_ensemble(latent_ensembles["self"], tmp_path / "planner", policy_bundle=goal_image_bc)
    p = Planner(str(bundle), PlannerConfig(samples=32, horizon=4, uncertainty_threshold=1e9))
    assert p.goal_image and p.goal_dim == p.latent.dim and p.chain is None
    mid = 0.5 * (p.lo + p.hi)
    z = np.linspace(-0.5, 0.5, p.latent.dim)
    states = np.concatenate([np.tile(mid, (p.history, 1)), np.zeros((p.history, p.n)), np.tile(z, (p.history, 1))], 1)
    acts = np.tile(mid, (p.history - 1, 1))
    with pytest.raises(ValueError, match="goal image's latent"):
        p.plan(states, acts, np.array([0.1, 0.1, 0.0]), prev_command=mid)
    near = p.plan(states, acts, z, prev_command=mid)
    p.reset()
    far = p.plan(states, acts, z + 5 * p.latent_std, prev_command=mid)
    assert np.isfinite(near.expected_return) and near.cost_spread >= 0
    drift = -near.expected_return / 4  # the mean energy to where it is: how far the predicted latent moves
    # (its own plan drifts about as far: the bound is loose by that)
    assert -far.expected_return / 4 == pytest.approx(5.0, abs=max(2 * drift, 0.5)), (near, far)
    from wm_control.bench.planner import plan_latency

    lat = plan_latency(str(bundle), samples=16, horizon=4, plans=5)  # bench planner plans to a goal latent too
    assert lat["latency_ms"]["p50"] > 0

    r = run_episodes(f"planner:{bundle}", 2, robot="pusher", episode_s=1.0, device="cpu",
                     planner_params={"samples": 16, "horizon": 4, "uncertainty_threshold": 1e9})
    pc = {k: float(v) for k, v in r["policy_counters"].items()}
    pl = {k: float(v) for k, v in r["planner_counters"].items() if k.startswith("status.")}
    ticks = sum(v for k, v in pc.items() if k.startswith("ticks."))
    assert r["episodes"] == 2 and sum(v for k, v in pl.items() if k != "status.NO_INPUT") >= 0.9 * ticks > 0, (pc, pl)
    assert pc.get("ticks.plan", 0) >= 0.8 * ticks and not any(k.startswith("latent_fallback.") for k in pc), pc
    assert "imagined_vs_real" not in r and "plan.cost_spread" in r["planner_counters"]
