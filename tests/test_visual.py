"""The visual world model: KV-cache streaming equals the parallel causal pass, JEPA resume, the
bundle and ONNX-vs-torch agreement over a whole rollout, and the world_model node over DDS."""

import time

import numpy as np
import pytest
import torch

from tests.helpers import NodeProcess
from wm_control.world.visual import EMPTY_AGE, Student, Teacher


def test_streaming_with_the_kv_cache_equals_the_parallel_causal_pass_beyond_the_window():
    torch.manual_seed(0)
    s = Student(latent_dim=6, action_dim=3, window=5, dim=16, layers=2, heads=2).eval()
    T = 17  # more than three windows: the ring buffer wraps and old frames expire
    z, a = torch.randn(1, T, 6), torch.randn(1, T, 3)
    with torch.no_grad():
        full = s(z, a)
        k, v, age = s.empty_cache(1)
        steps = []
        for t in range(T):
            nxt, k, v, age = s.step(z[:, t], a[:, t], k, v, age, torch.tensor([t % 5]))
            steps.append(nxt)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    # no slot holds a frame older than the window; the first step sees one valid slot
    assert float(age.max()) < 5
    with torch.no_grad():
        k0, v0, a0 = s.empty_cache(1)
        _, _, _, age1 = s.step(z[:, 0], a[:, 0], k0, v0, a0, torch.tensor([0]))
    assert int((age1 < 5).sum()) == 1 and float(age1.max()) == EMPTY_AGE


def test_the_window_limits_what_the_student_sees():
    """A frame older than the window must not change the prediction (it has left the cache)."""
    torch.manual_seed(1)
    s = Student(latent_dim=4, action_dim=2, window=4, dim=16, layers=1, heads=2).eval()
    z, a = torch.randn(1, 9, 4), torch.randn(1, 9, 2)
    z2 = z.clone()
    z2[:, 0] += 5.0
    with torch.no_grad():
        p1, p2 = s(z, a), s(z2, a)
    assert not torch.allclose(p1[:, 2], p2[:, 2])  # frame 0 is inside the window of frame 2
    assert torch.allclose(p1[:, 4:], p2[:, 4:], atol=1e-6)  # ... and outside from frame 4 on


def test_spatial_softmax_keypoints_move_with_the_thing_they_track():
    """A keypoint is its channel's expected (x, y) over the map: a sharp blob gives the blob's place, and a blob
    moved right moves x alone; the encoder with keypoints maps frames to the latent size, as without."""
    from wm_control.world.visual import ConvEncoder, SpatialSoftmax

    sm = SpatialSoftmax(16)
    f = torch.full((1, 1, 16, 16), -50.0)
    f[0, 0, 3, 12] = 50.0  # row 3, column 12
    c = torch.linspace(-1, 1, 16)
    np.testing.assert_allclose(sm(f)[0].numpy(), [c[12].item(), c[3].item()], atol=1e-5)
    g = torch.full((1, 1, 16, 16), -50.0)
    g[0, 0, 3, 14] = 50.0
    d = (sm(g) - sm(f))[0].numpy()
    assert d[0] > 0.2 and abs(d[1]) < 1e-5
    enc = ConvEncoder(64, (8, 8, 16, 16), 12, keypoints=4)
    assert enc(torch.zeros(3, 3, 64, 64)).shape == (3, 12) and enc.kp.out_channels == 4
    assert enc.fc.in_features == 16 * 4 * 4 + 2 * 4


def test_teacher_is_bidirectional_and_ignores_masked_frames():
    torch.manual_seed(2)
    t = Teacher(latent_dim=4, action_dim=2, window=8, dim=16, layers=1, heads=2).eval()
    z, a = torch.randn(1, 8, 4), torch.randn(1, 8, 2)
    known = torch.zeros(1, 8, dtype=torch.bool)
    known[:, :4] = True
    z2 = z.clone()
    z2[:, 6] += 3.0  # an unknown frame: the teacher must not read it
    a2 = a.clone()
    a2[:, 7] += 3.0  # a later action: a bidirectional model may use it for earlier frames
    with torch.no_grad():
        base = t(z, a, known)
        assert torch.allclose(base, t(z2, a, known), atol=1e-6)
        assert not torch.allclose(base[:, 4], t(z, a2, known)[:, 4])


@pytest.mark.parametrize("variant", [{}, {"enc_keypoints": 4, "jepa_patch_weight": 1.0}])
def test_jepa_momentum_schedule_resumes_where_it_stopped(tmp_path, debug_visual, variant):
    """(Also with keypoints and patch-level targets: their predictor resumes with the rest.)"""
    from wm_control.train.visual import VisualConfig, load_video, momentum_at, train_encoder

    ckpt, _ = debug_visual
    import yaml

    meta = yaml.safe_load((ckpt / "checkpoint.yaml").read_text())
    cfg = VisualConfig(**{**meta["config"], "jepa_steps": 20, "ckpt_every": 5, **variant})
    eps, _ = load_video(meta["data"], cfg, with_actions=False)
    torch.set_num_threads(1)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    resumed.mkdir()
    train_encoder(cfg, eps, straight)
    part = train_encoder(cfg, eps, resumed, max_steps=10)
    assert part["stopped_at"] == 10 and not (resumed / "encoder.pt").exists()
    train_encoder(cfg, eps, resumed, resume=True)

    def log(d):
        import json

        return [json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()]

    m_straight = [r["momentum"] for r in log(straight)]
    m_resumed = [r["momentum"] for r in log(resumed)]
    assert m_resumed == m_straight
    assert all(("patch_loss" in r) == bool(variant) for r in log(straight))
    assert m_straight[-1] == pytest.approx(momentum_at(19, 20, cfg.tau0, cfg.tau1))
    assert momentum_at(0, 20, 0.996, 1.0) == pytest.approx(0.996) and momentum_at(20, 20, 0.996, 1.0) == 1.0
    a, b = torch.load(straight / "encoder.pt"), torch.load(resumed / "encoder.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bundle_is_verified_and_onnx_matches_torch_over_a_whole_rollout(debug_visual):
    import copy

    from tests.numerics import assert_export_matches
    from wm_control.train.visual import load_video, load_visual
    from wm_control.world.bundle import BundleError, load_bundle
    from wm_control.world.stream import StreamingWorldModel
    from wm_control.world.visual import frames_to_input

    ckpt, bundle_dir = debug_visual
    vm = load_visual(ckpt)
    b = load_bundle(bundle_dir, joint_names=vm.meta["joint_names"], image_size=(vm.cfg.image_size,) * 2)
    assert b.manifest["visual"]["window"] == vm.cfg.window
    st = b.graph("student_step")["inputs"]
    assert all(d > 0 for g in st.values() for d in g["shape"])  # static shapes (one TensorRT engine)
    with pytest.raises(BundleError, match="image_size"):
        load_bundle(bundle_dir, image_size=(96, 96))
    wm = StreamingWorldModel(b, device="cpu", warmup=1)
    ep = load_video(vm.meta["heldout"], vm.cfg)[0][0]
    T = min(len(ep.frames), 3 * vm.cfg.window)  # the ring buffer wraps
    ort_z, ort_pred = [], []
    for t in range(T):  # the node's streaming runtime (ONNX Runtime), fed its own cache
        p = wm.observe(ep.frames[t], ep.command[t])
        ort_z.append(p.latent)
        ort_pred.append(p.next_latent)
        assert p.reset == (t == 0)

    def torch_stream(dtype, wrong_weight: bool = False):
        """The same stream in torch, float32 (as trained) or float64 (exact): tests/numerics.py.
        ``wrong_weight``: one of the student's weight matrices 1% off, as a wrong export would carry it."""
        enc, adapter, student = (copy.deepcopy(m).to(dtype) for m in (vm.encoder, vm.adapter, vm.student))
        if wrong_weight:
            with torch.no_grad():
                next(w for w in student.parameters() if w.dim() == 2).mul_(1.01)
        mean, std = (torch.from_numpy(x).to(dtype) for x in (vm.mean, vm.std))
        k, v, age = (c.to(dtype) for c in student.empty_cache(1))
        z_prev, zs, preds = None, [], []
        with torch.no_grad():
            for t in range(T):
                z = (enc(frames_to_input(torch.from_numpy(ep.frames[t:t + 1])).to(dtype)) - mean) / std
                a = adapter(z if z_prev is None else z_prev, z, torch.from_numpy(ep.command[t:t + 1]).to(dtype))
                nxt, k, v, age = student.step(z, a, k, v, age, torch.tensor([t % vm.cfg.window]))
                z_prev = z
                zs.append(z[0].numpy())
                preds.append(nxt[0].numpy())
        return np.stack(zs), np.stack(preds)

    (z32, p32), (z64, p64) = torch_stream(torch.float32), torch_stream(torch.float64)
    assert_export_matches(np.stack(ort_z), z32, z64, "encoder latents")
    assert_export_matches(np.stack(ort_pred), p32, p64, f"student predictions over {T} cached steps")
    _, wrong = torch_stream(torch.float32, wrong_weight=True)  # the same check refuses a wrong export
    with pytest.raises(AssertionError, match="export differs from float64"):
        assert_export_matches(wrong, p32, p64)
    # the preview leaves the committed cache alone and matches torch's rollout on a copy
    before = wm.k.copy()
    lat = wm.preview(ep.command[T - 1], 4)
    assert lat.shape == (4, vm.cfg.latent_dim) and np.array_equal(before, wm.k)
    img = wm.decode(lat)
    assert img.shape == (4, vm.cfg.image_size, vm.cfg.image_size, 3) and img.dtype == np.uint8
    wm.reset()
    assert wm.observe(ep.frames[0], ep.command[0]).reset


class _Listener:
    def __init__(self):
        from wm_control.ros import qos
        from wm_control.ros.dds import DdsNode

        self.node = DdsNode("wm_test_listener")
        self.latents, self.previews, self.diag = [], [], {}
        self.node.create_subscription("wm_control/msg/LatentState", "/wm/latent", self.latents.append)
        self.node.create_subscription("sensor_msgs/msg/Image", "/wm/preview", self.previews.append, qos.SENSOR_DATA)
        self.node.create_subscription("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", self._diag,
                                      qos.DIAGNOSTICS)
        self.frames = self.node.create_publisher("sensor_msgs/msg/Image", "/wm/frame", qos.SENSOR_DATA)
        self.js = self.node.create_publisher("sensor_msgs/msg/JointState", "/joint_states", qos.SENSOR_DATA)
        self.cmd = self.node.create_publisher("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands")

    def _diag(self, m):
        for s in m.status:
            if s.name.endswith("world_model"):
                self.diag = {kv.key: kv.value for kv in s.values}

    def wait(self, seconds: float, until=None) -> bool:
        return self.node.spin(until=until or (lambda: False), timeout=seconds)

    def close(self):
        self.node.destroy()


def test_world_model_node_publishes_latents_previews_and_resets_on_gaps(debug_visual):
    from wm_control.messages import convert as cv
    from wm_control.train.visual import load_video, load_visual
    from wm_control.world.bundle import load_bundle
    from wm_control.world.stream import StreamingWorldModel

    ckpt, bundle_dir = debug_visual
    vm = load_visual(ckpt)
    ep = load_video(vm.meta["heldout"], vm.cfg)[0][0]
    names = vm.meta["joint_names"]
    ref = StreamingWorldModel(load_bundle(bundle_dir), device="cpu", warmup=1)
    S = vm.cfg.image_size
    lis = _Listener()
    try:
        with NodeProcess("world_model", "-p", f"bundle:={bundle_dir}", "-p", "device:=cpu", "-p", "preview_steps:=3",
                         "-r", "__node:=world_model") as wmn:
            make = lis.node.msg
            t0 = time.time()
            deadline = time.monotonic() + 20
            while not lis.latents and time.monotonic() < deadline:  # until discovery has matched
                lis.js.publish(cv.make_joint_state(make, time.time(), names, ep.q[0], np.zeros(len(names))))
                lis.cmd.publish(cv.make_multiarray(make, ep.command[0].astype(np.float64)))
                lis.frames.publish(cv.make_image(make, t0, ep.frames[0]))
                lis.wait(0.1)
            assert lis.latents, wmn.output()
            n0 = len(lis.latents)
            stamps = [t0 + (i + 1) / 30.0 for i in range(6)] + [t0 + 10.0, t0 + 10.0 + 1 / 30.0]  # then a gap
            for i, st in enumerate(stamps):
                lis.js.publish(cv.make_joint_state(make, time.time(), names, ep.q[i + 1], np.zeros(len(names))))
                lis.frames.publish(cv.make_image(make, st, ep.frames[i + 1]))
                lis.wait(0.06)
            lis.frames.publish(cv.make_image(make, t0 + 11.0, np.zeros((S + 4, S, 3), np.uint8)))  # wrong size
            lis.wait(10, lambda: len(lis.latents) >= n0 + len(stamps) and "dropped.malformed" in lis.diag)
            got = lis.latents[n0:]
            assert [round(cv.stamp_sec(m.header.stamp) - t0, 4) for m in got] == [round(s - t0, 4) for s in stamps]
            assert [bool(m.reset) for m in got] == [False] * 6 + [True, False]  # the gap emptied the cache
            assert lis.latents[0].reset
            for m, i in zip(got, range(1, 9)):  # the published latent is the encoder's latent of that frame
                assert np.allclose(np.asarray(m.latent), ref.encode(ep.frames[i]), atol=1e-4)
            assert list(got[0].joint_names) == names and np.allclose(got[0].position, ep.q[1])
            assert lis.diag.get("dropped.malformed") == "1" and lis.diag.get("resets.gap") == "1", lis.diag
            assert "frame.rate_hz" in lis.diag and "surprise.p50" in lis.diag
            assert float(lis.diag["latency.p50_ms"]) > 0
            assert lis.previews
            p = lis.previews[-1]
            assert (p.height, p.width, p.encoding) == (S, 3 * S, "rgb8")
            # the goal image (latched, at the camera's size): resized as camera_ingest does, encoded, latched out
            from wm_control.ros import topics
            from wm_control.world.frames import FrameSpec, prepare_frame

            goals = []
            lis.node.create_subscription(topics.GOAL_LATENT.type, topics.GOAL_LATENT.name, goals.append,
                                         topics.GOAL_LATENT.qos)
            big = np.repeat(np.repeat(ep.frames[3], 2, 0), 2, 1)  # a 2x camera image
            lis.node.create_publisher(topics.GOAL_IMAGE.type, topics.GOAL_IMAGE.name, topics.GOAL_IMAGE.qos).publish(
                cv.make_image(make, t0 + 12.0, big))
            lis.wait(10, lambda: bool(goals))
            assert goals and round(cv.stamp_sec(goals[-1].header.stamp) - t0, 4) == 12.0, wmn.output()
            assert goals[-1].bundle_id == ref.bundle.id
            np.testing.assert_allclose(np.asarray(goals[-1].latent), ref.encode(prepare_frame(big, FrameSpec(S, S))),
                                       atol=1e-4)
    finally:
        lis.close()


def test_eval_visual_writes_json_and_plots_with_every_comparison(debug_visual, tmp_path):
    import json

    from wm_control.eval.visual import evaluate_visual

    ckpt, _ = debug_visual
    out = tmp_path / "visual.json"
    res = evaluate_visual(ckpt, out, variants={"real_all": tmp_path / "ra", "real_labelled": tmp_path / "rl"},
                          speed_iters=5)
    saved = json.loads(out.read_text())
    assert saved["aims"] == res["aims"] and set(saved["actions"]) == {"latent_aligned", "real_all", "real_labelled"}
    H = saved["horizon"]
    for name in ("teacher", "student", "no_motion"):
        assert len(saved["prediction"][name]["latent_rmse"]) == H
    assert saved["actions"]["real_labelled"]["episodes"] < saved["actions"]["real_all"]["episodes"]
    sp = saved["speed"]
    assert sp["student_fps"] > 0 and sp["kv_cache"]["speedup"] == pytest.approx(
        sp["kv_cache"]["recompute_window_ms"] / sp["kv_cache"]["step_ms"])
    assert out.with_suffix(".png").stat().st_size > 10_000 and (tmp_path / "visual_frames.png").exists()


def test_visual_state_report_with_and_without_the_latent(debug_visual, tmp_path):
    from wm_control.eval.visual_state import visual_state_report

    ckpt, _ = debug_visual
    res = visual_state_report(ckpt, tmp_path / "vs.json", preset="debug", bc_iterations=20, episodes=2, horizon=10,
                              out_root=tmp_path / "vs")
    e = res["ensemble"]
    assert e["joint_state"]["latent_dim"] == 0 and e["joint_state_and_latent"]["latent_dim"] > 0
    assert len(e["joint_state"]["q_mae_rad"]) == 10
    assert {"goal topic", "pixels (no goal)", "neither"} <= set(res["goal_from_pixels"])
    assert (tmp_path / "vs.png").exists()


def test_prefill_and_rollout_equal_stepping_frame_by_frame():
    torch.manual_seed(3)
    s = Student(latent_dim=5, action_dim=2, window=8, dim=16, layers=2, heads=2).eval()
    z, a = torch.randn(2, 6, 5), torch.randn(2, 13, 2)
    with torch.no_grad():
        k, v, age = s.empty_cache(2)
        outs, z_next = [], None
        for t in range(6 + 8 - 1):  # 6 frames of context, 8 predicted: the ring wraps
            z_t = z[:, t] if t < 6 else z_next
            z_next, k, v, age = s.step(z_t, a[:, t], k, v, age, torch.full((2,), t % 8))
            if t >= 5:
                outs.append(z_next)
        pred, (kp, vp, agep) = s.prefill(z, a[:, :6])
        roll = s.rollout(z, a, 8)
    assert torch.allclose(torch.stack(outs, 1), roll, atol=1e-5)
    assert torch.allclose(pred, s(z, a[:, :6]), atol=1e-6)
    k6, v6, age6 = s.empty_cache(2)
    with torch.no_grad():
        for t in range(6):
            _, k6, v6, age6 = s.step(z[:, t], a[:, t], k6, v6, age6, torch.full((2,), t))
    assert torch.allclose(kp, k6, atol=1e-5) and torch.allclose(vp, v6, atol=1e-5) and torch.equal(agep, age6)


def test_bench_visual_writes_json(debug_visual, tmp_path):
    import json
    import subprocess
    import sys

    _, bundle = debug_visual
    out = tmp_path / "bv.json"
    r = subprocess.run([sys.executable, "-m", "wm_control", "bench", "visual", "--bundle", str(bundle), "--device",
                        "cpu", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["frames"] == 1000 and 0 < res["observe_ms"]["p50"] <= res["observe_ms"]["p99"]
    assert res["frames_per_s_with_preview"] > 0 and res["frames_per_s_streaming"] > 0  # speeds: the JSON's, not a test's


def test_camera_only_bags_are_video_for_the_unlabelled_stages(debug_visual, tmp_path):
    """Bags with the action (and joint state) topics removed: read as video, never labelled."""
    import shutil
    from pathlib import Path

    import yaml
    from rosbags.highlevel import AnyReader

    from wm_control.data.bags import BagWriter
    from wm_control.data.dataset import DatasetConfig
    from wm_control.messages import registry
    from wm_control.train.visual import VisualConfig, labelled_split, load_video, read_video_only
    from wm_control.world.frames import FrameSpec

    ckpt, _ = debug_visual
    meta = yaml.safe_load((ckpt / "checkpoint.yaml").read_text())
    cfg = VisualConfig(**meta["config"])
    src = sorted(p.parent for p in Path(meta["data"]).rglob("metadata.yaml"))[0]
    reg = registry()
    data = tmp_path / "mixed"
    data.mkdir()
    with AnyReader([src], default_typestore=reg.store) as r, BagWriter(data / "video_only", reg) as w:
        w.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        conn = [c for c in r.connections if c.topic == "/camera/image_raw"]
        for c, t_ns, raw in r.messages(connections=conn):
            w.write("/camera/image_raw", t_ns * 1e-9, r.deserialize(raw, c.msgtype))
    shutil.copytree(src, data / "robot_log")
    eps, names = load_video(data, cfg)
    assert len(eps) == 2 and names
    video, robot = (eps[0], eps[1]) if np.isnan(eps[0].command).all() else (eps[1], eps[0])
    assert np.isnan(video.command).all() and not np.isnan(robot.command).any()
    assert abs(len(video.frames) - len(robot.frames)) <= 2  # the same stream on the same grid
    assert np.array_equal(video.frames[5], robot.frames[5])
    for seed in range(5):
        assert list(labelled_split(eps, 0.5, seed)) == [eps.index(robot)]  # video cannot be labelled
    segs = read_video_only(data / "video_only", DatasetConfig(rate=cfg.frame_rate),
                           FrameSpec(cfg.image_size, cfg.image_size))
    assert len(segs) == 1 and segs[0][0].shape[1:] == (cfg.image_size, cfg.image_size, 3)


def test_ensemble_with_a_latent_predicts_the_joints_from_the_joints():
    from wm_control.world.ensemble import EnsembleDynamics, StateSpec

    torch.manual_seed(0)
    spec = StateSpec(joint_names=["a", "b"], history=3, latent_dim=5)
    m = EnsembleDynamics(spec, members=2, hidden=16).eval()
    sw, aw = torch.randn(2, 4, 3, 9), torch.randn(2, 4, 3, 2)
    sw2 = sw.clone()
    sw2[..., 4:] += 3.0  # only the latent changes
    with torch.no_grad():
        n1, _ = m(sw, aw, with_reward=False)
        n2, _ = m(sw2, aw, with_reward=False)
    assert torch.allclose(n1[..., :4], n2[..., :4], atol=1e-6)  # joints: unmoved by the latent
    assert not torch.allclose(n1[..., 4:] - sw[:, :, -1, 4:], n2[..., 4:] - sw2[:, :, -1, 4:])
    joint = EnsembleDynamics(StateSpec(joint_names=["a", "b"], history=3, latent_dim=5, latent_to_joints=True),
                             members=2, hidden=16).eval()
    with torch.no_grad():
        j1, j2 = joint(sw, aw, with_reward=False)[0], joint(sw2, aw, with_reward=False)[0]
    assert not torch.allclose(j1[..., :4], j2[..., :4])
