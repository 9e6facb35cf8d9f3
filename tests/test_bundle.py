"""Bundles: a corrupt or mismatched bundle is refused with the failed check named; the exported
policy graph agrees with torch; the device choice is honoured or refused clearly."""

import shutil

import numpy as np
import pytest
import yaml

from wm_control.world.bundle import BundleError, choose_providers, compute_bundle_id, load_bundle


@pytest.fixture(scope="module")
def bc(debug_bc):
    return debug_bc


def copy(bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(bundle, dst)
    return dst


def reseal(m):
    """A consistent edit: the bundle id recomputed, so the checks behind the id are reached (an edit that
    is not resealed is refused by the id: tests/test_bundle_trust.py)."""
    m["bundle_id"] = compute_bundle_id(m)
    return m


def test_valid_bundle_loads_and_matches_robot(bc):
    _, bundle = bc
    b = load_bundle(bundle, joint_names=["joint0", "joint1"])
    assert b.joint_names == ["joint0", "joint1"] and b.control_rate == 50.0
    assert b.manifest["robot"]["position_limits"][1] == [-3.0, 3.0]
    assert set(b.manifest["files"]) == {"policy.onnx"}


def _bc_runs(ckpt, x):
    """The BC policy in float32 and float64 torch on ``x`` (tests/numerics.py says why both)."""
    import copy

    import torch

    from wm_control.train.bc import load_bc

    policy, _ = load_bc(ckpt)
    with torch.no_grad():
        t32 = policy(torch.as_tensor(x)).numpy()
        t64 = copy.deepcopy(policy).double()(torch.as_tensor(x, dtype=torch.float64)).numpy()
    return t32, t64


def test_onnx_agrees_with_torch(bc):
    from tests.numerics import assert_export_matches

    ckpt, bundle = bc
    sess = load_bundle(bundle).session("policy", "cpu")
    for batch in (1, 7):
        # observations far outside the training data too: the bound scales with the values
        x = np.random.default_rng(batch).normal(scale=[[1.0], [30.0]][batch > 1],
                                                size=(batch, sess.sess.get_inputs()[0].shape[-1])).astype(np.float32)
        ours = sess.run(obs=x)["action"]
        assert ours.shape == (batch, 2)
        assert_export_matches(ours, *_bc_runs(ckpt, x), what=f"policy, batch {batch}")


def onnx_obs_dim(model) -> int:
    return model.graph.input[0].type.tensor_type.shape.dim[-1].dim_value


def test_a_perturbed_weight_fails_the_check(bc, tmp_path):
    """The agreement check is not vacuous: one layer's weights stored at half precision (each off by
    up to 5e-4 of itself, a classic wrong export) are caught, while the true export passes."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from tests.numerics import assert_export_matches, export_error

    ckpt, bundle = bc
    model = onnx.load(str(bundle / "policy.onnx"))
    x = np.random.default_rng(0).normal(size=(16, onnx_obs_dim(model)))
    x = x.astype(np.float32)
    t32, t64 = _bc_runs(ckpt, x)
    w = max((i for i in model.graph.initializer if len(i.dims) == 2), key=lambda i: np.prod(i.dims))
    arr = numpy_helper.to_array(w).astype(np.float16).astype(np.float32)
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    r = export_error(out, t32, t64)
    assert r["candidate"] > 10 * r["bound"], r
    with pytest.raises(AssertionError, match="export differs from float64"):
        assert_export_matches(out, t32, t64)


def test_normaliser_is_inside_the_graph(bc):
    """Raw observations in, raw radians out: ORT(x) is the bare network on (x - mean) / std, de-normalised
    with the action normaliser, both normalisers taken from the checkpoint (outside the graph); and it is
    not the network on x as given (a graph without its normaliser)."""
    import copy

    import torch

    from tests.numerics import assert_export_matches, export_error
    from wm_control.train.bc import load_bc

    ckpt, bundle = bc
    policy, meta = load_bc(ckpt)
    net = policy.net  # the MLP alone: the checkpoint's weights, no normaliser
    norm = {k: np.asarray(v, np.float64) for k, v in meta["normalizer"].items()}
    sess = load_bundle(bundle).session("policy", "cpu")
    x = (norm["obs_mean"] + norm["obs_std"] * np.random.default_rng(0).normal(size=(16, norm["obs_mean"].size)))
    x = x.astype(np.float32)

    def reference(obs, normalise=True):
        """(float32, float64) of net((obs - mean) / std) * act_std + act_mean, in numpy around torch."""
        out = []
        for dtype, model in ((torch.float32, net), (torch.float64, copy.deepcopy(net).double())):
            o = obs.astype(np.float64)
            z = (o - norm["obs_mean"]) / norm["obs_std"] if normalise else o
            with torch.no_grad():
                y = model(torch.as_tensor(z, dtype=dtype)).numpy().astype(np.float64)
            out.append(y * norm["act_std"] + norm["act_mean"])
        return out

    ours = sess.run(obs=x)["action"]
    assert_export_matches(ours, *reference(x), what="policy with its normaliser")
    r = export_error(ours, *reference(x, normalise=False))  # the same graph read as if it had none
    assert r["candidate"] > 10 * r["bound"], r


def test_corrupt_file_is_refused(bc, tmp_path):
    b = copy(bc[1], tmp_path)
    data = bytearray((b / "policy.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="check 'sha256': policy.onnx"):
        load_bundle(b)


@pytest.mark.parametrize("edit,check", [
    (lambda m: m.update(format="something/else"), "check 'format'"),
    (lambda m: m["files"].update({"missing.onnx": "0" * 64}), "check 'files': missing.onnx"),
    (lambda m: m["graphs"]["policy"]["inputs"]["obs"].update(shape=[-1, 5]), "check 'graph_io'"),
    (lambda m: m.pop("robot"), "section 'robot'"),
])
def test_bad_manifest_is_refused(bc, tmp_path, edit, check):
    b = copy(bc[1], tmp_path)
    m = yaml.safe_load((b / "manifest.yaml").read_text())
    edit(m)
    (b / "manifest.yaml").write_text(yaml.safe_dump(reseal(m)))
    with pytest.raises(BundleError, match=check.replace("(", r"\(")):
        load_bundle(b)


def test_mismatched_robot_and_camera_are_refused(bc, tmp_path):
    with pytest.raises(BundleError, match="check 'joint_names'"):
        load_bundle(bc[1], joint_names=["joint1", "joint0"])  # same names, wrong order
    b = copy(bc[1], tmp_path)
    m = yaml.safe_load((b / "manifest.yaml").read_text())
    m["camera"] = {"width": 64, "height": 64}
    (b / "manifest.yaml").write_text(yaml.safe_dump(reseal(m)))
    with pytest.raises(BundleError, match="check 'image_size'"):
        load_bundle(b, image_size=(96, 96))
    load_bundle(b, image_size=(64, 64))


def test_unlisted_graph_and_missing_manifest(bc, tmp_path):
    b = copy(bc[1], tmp_path)
    shutil.copy(b / "policy.onnx", b / "extra.onnx")
    with pytest.raises(BundleError, match="not in the manifest"):
        load_bundle(b)
    with pytest.raises(BundleError, match="check 'manifest'"):
        load_bundle(tmp_path / "nothing_here")


@pytest.mark.parametrize("offered,device,want", [
    (["CPUExecutionProvider"], "cpu", ["CPUExecutionProvider"]),
    (["CPUExecutionProvider"], "auto", ["CPUExecutionProvider"]),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], "AUTO",
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], "cuda",
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], "tensorrt",
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], "cpu", ["CPUExecutionProvider"]),
    (["CUDAExecutionProvider", "CPUExecutionProvider", "OpenVINOExecutionProvider"], "cuda",
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),  # in our order, never one we did not ask for
])
def test_device_choice(monkeypatch, tmp_path, offered, device, want):
    """The chain for what this onnxruntime offers, and the session built on it: that provider list, in
    that order, handed to InferenceSession; TensorRT with its fp16 and engine-cache options (the cache
    keyed by the bundle id), CUDA and CPU as plain names, one intra-op thread."""
    import onnxruntime as ort

    from wm_control.world.bundle import Session

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(offered))
    assert choose_providers(device) == want
    made = []

    class Recording:  # stands in for onnxruntime.InferenceSession (no GPU here): keeps what it was given
        def __init__(self, model, sess_options=None, providers=None):
            self.model, self.options, self.providers = model, sess_options, providers
            made.append(self)

        def get_providers(self):
            return [p[0] if isinstance(p, tuple) else p for p in self.providers]

        def get_inputs(self):
            return []

        get_outputs = get_inputs

    monkeypatch.setattr(ort, "InferenceSession", Recording)
    graph, key = tmp_path / "g.onnx", "ab" * 32
    graph.write_bytes(b"not a graph: the fake never parses it")
    sess = Session(graph, {}, device, cache_dir=tmp_path / "trt", warmup=0, cache_key=key)
    assert len(made) == 1 and made[0].model == graph.read_bytes() and sess.providers == want
    given = made[0].providers
    assert [p[0] if isinstance(p, tuple) else p for p in given] == want
    trt = want[0] == "TensorrtExecutionProvider"
    assert isinstance(given[0], tuple) == trt and all(isinstance(p, str) for p in given[1:])  # options: TensorRT's
    if trt:
        cache = tmp_path / "trt" / key[:16]
        _, opts = given[0]
        assert {k: opts.get(k) for k in ("trt_fp16_enable", "trt_engine_cache_enable", "trt_engine_cache_path",
                                         "trt_timing_cache_enable", "trt_timing_cache_path")} == {
            "trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}
        assert sess.cache_dir == cache and cache.is_dir()
    else:
        assert sess.cache_dir is None and not (tmp_path / "trt").exists()
    assert made[0].options.intra_op_num_threads == 1 and made[0].options.inter_op_num_threads == 1


@pytest.mark.parametrize("offered,device,error", [
    (["CPUExecutionProvider"], "cuda", "device cuda asked for"),
    (["CPUExecutionProvider"], "tensorrt", "device tensorrt asked for"),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "tensorrt", "device tensorrt asked for"),
    (["CPUExecutionProvider"], "tpu", "device must be"),
])
def test_device_that_is_not_offered_is_refused(monkeypatch, offered, device, error):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(offered))
    with pytest.raises(BundleError, match=error):
        choose_providers(device)
