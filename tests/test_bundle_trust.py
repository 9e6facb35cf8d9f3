"""Bundles an attacker touched are refused, each test named after its attack (security review): the
manifest is covered by the bundle id, files stay inside the folder, a pin or a required ed25519 signature
refuses even a consistent rewrite, TensorRT engines are keyed by the bundle id, the safety limits are never
looser than the robot's own, and a pickle planted as training state never runs.

Only names that existed before bundle ids are imported at the top; the new API is imported inside the
tests that need it."""

import hashlib
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from wm_control.world.bundle import BundleError, load_bundle

JOINTS = ["joint0", "joint1"]


@pytest.fixture
def bundle(debug_bc, tmp_path):
    """A private copy of the debug BC bundle, free to mutate."""
    dst = tmp_path / "bundle"
    shutil.copytree(debug_bc[1], dst)
    return dst


def read(b):
    return yaml.safe_load((b / "manifest.yaml").read_text())


def write(b, m):
    (b / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def reseal(m):
    """What a consistent attacker does after an edit: recompute the bundle id."""
    from wm_control.world.bundle import compute_bundle_id

    m["bundle_id"] = compute_bundle_id(m)
    return m


def refused(b, check, **kw):
    with pytest.raises(BundleError, match=f"check '{check}'") as e:
        load_bundle(b, **kw)
    assert "\n" not in str(e.value)  # one line, naming the check
    return str(e.value)


def keypair(tmp_path, name="bundle_signing"):
    from wm_control.world.bundle import generate_keypair

    return generate_keypair(tmp_path / f"keys_{name}", name)


def rewrite_graph(b):
    """The consistent attacker: a different policy graph, its sha256 in the manifest, the id resealed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(b / "policy.onnx"))
    w = max((i for i in model.graph.initializer if len(i.dims) == 2), key=lambda i: np.prod(i.dims))
    w.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(w), w.name))
    onnx.save(model, str(b / "policy.onnx"))
    m = read(b)
    m["files"]["policy.onnx"] = hashlib.sha256((b / "policy.onnx").read_bytes()).hexdigest()
    write(b, reseal(m))


# ---- the manifest is covered by the bundle id ---------------------------------------------------------
def test_manifest_max_step_edit_is_refused(bundle):
    m = read(bundle)
    m["robot"]["max_step"] = 1000.0
    m["robot"]["position_limits"] = None
    write(bundle, m)
    refused(bundle, "bundle_id")


def test_manifest_control_rate_edit_is_refused(bundle):
    m = read(bundle)
    m["robot"]["control_rate"] = 500.0
    write(bundle, m)
    refused(bundle, "bundle_id")


def test_manifest_joint_names_swap_is_refused(bundle):
    m = read(bundle)
    m["robot"]["joint_names"] = m["robot"]["joint_names"][::-1]
    write(bundle, m)
    refused(bundle, "bundle_id")


def test_manifest_limits_widened_is_refused(bundle):
    m = read(bundle)
    m["robot"]["position_limits"] = [[-100.0, 100.0]] * 2
    write(bundle, m)
    refused(bundle, "bundle_id")


def test_manifest_reformatted_without_edits_is_accepted(bundle):
    """The id is over the content, not the text: re-dumping in another key order and style still loads."""
    b0 = load_bundle(bundle)
    m = read(bundle)
    (bundle / "manifest.yaml").write_text("# a comment\n" + yaml.safe_dump(m, sort_keys=True, default_flow_style=True))
    assert load_bundle(bundle).id == b0.id and len(b0.id) == 64


def test_bundle_from_before_bundle_ids_is_refused_with_a_reexport_hint(bundle):
    m = read(bundle)
    m.pop("bundle_id", None)
    m["format"] = "wm_control.bundle/1"
    write(bundle, m)
    msg = refused(bundle, "bundle_id")
    assert "re-export" in msg and "wm-control export" in msg


# ---- a consistent rewrite: only a pin or a required signature refuses it ------------------------------
def test_rewritten_graph_with_its_sha_is_refused_when_pinned_or_signature_required(bundle, tmp_path):
    from wm_control.world.bundle import sign_bundle

    priv, pub = keypair(tmp_path)
    good = load_bundle(bundle).id
    sign_bundle(bundle, priv)
    assert load_bundle(bundle, expect_id=good, trusted_keys=[pub], require_signature=True).signed_by
    rewrite_graph(bundle)
    # expected: anyone can write a valid unsigned bundle, so without a pin or a signature it verifies
    bad = load_bundle(bundle)
    assert bad.id != good
    refused(bundle, "pin", expect_id=good)
    refused(bundle, "signature", trusted_keys=[pub], require_signature=True)


def test_pin_accepts_the_pinned_bundle_and_wants_the_whole_id(bundle):
    bid = load_bundle(bundle).id
    assert load_bundle(bundle, expect_id=bid.upper()).id == bid
    refused(bundle, "pin", expect_id=bid[:12])  # a prefix is not a pin


# ---- files stay inside the bundle ----------------------------------------------------------------------
def test_dotdot_path_escaping_the_bundle_is_refused(bundle, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    shutil.move(bundle / "policy.onnx", tmp_path / "elsewhere" / "policy.onnx")
    m = read(bundle)
    m["files"] = {"../elsewhere/policy.onnx": m["files"]["policy.onnx"]}
    m["graphs"]["policy"]["file"] = "../elsewhere/policy.onnx"
    write(bundle, reseal(m))
    refused(bundle, "paths")


def test_absolute_path_is_refused(bundle, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.move(bundle / "policy.onnx", outside)
    m = read(bundle)
    m["files"] = {str(outside): m["files"]["policy.onnx"]}
    m["graphs"]["policy"]["file"] = str(outside)
    write(bundle, reseal(m))
    refused(bundle, "paths")


def test_symlink_escaping_the_bundle_is_refused(bundle, tmp_path):
    """Same bytes, same sha256, unchanged manifest: only the link out gives it away."""
    outside = tmp_path / "outside.onnx"
    shutil.move(bundle / "policy.onnx", outside)
    os.symlink(outside, bundle / "policy.onnx")
    refused(bundle, "paths")


# ---- signatures ----------------------------------------------------------------------------------------
def test_signature_valid_is_accepted(bundle, tmp_path):
    from wm_control.world.bundle import public_key_id, sign_bundle

    priv, pub = keypair(tmp_path)
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    sig = sign_bundle(bundle, priv)
    assert sig == bundle / "bundle.sig"
    b = load_bundle(bundle, trusted_keys=[pub], require_signature=True)
    assert b.signed_by == public_key_id(pub)
    assert load_bundle(bundle).signed_by is None  # no keys given: not checked


def test_signature_tampered_is_refused(bundle, tmp_path):
    import base64

    from wm_control.world.bundle import sign_bundle

    priv, pub = keypair(tmp_path)
    sig_path = sign_bundle(bundle, priv)
    sig = yaml.safe_load(sig_path.read_text())
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[0] ^= 1
    sig["signature"] = base64.b64encode(bytes(raw)).decode()
    sig_path.write_text(yaml.safe_dump(sig))
    assert "tampered" in refused(bundle, "signature", trusted_keys=[pub])  # invalid: refused even if not required


def test_signature_of_a_bundle_edited_after_signing_is_refused(bundle, tmp_path):
    from wm_control.world.bundle import sign_bundle

    priv, pub = keypair(tmp_path)
    sign_bundle(bundle, priv)
    m = read(bundle)
    m["robot"]["max_step"] = 1000.0
    write(bundle, reseal(m))
    assert "changed after signing" in refused(bundle, "signature", trusted_keys=[pub], require_signature=True)


def test_signature_missing_is_refused_when_required(bundle, tmp_path):
    _, pub = keypair(tmp_path)
    refused(bundle, "signature", trusted_keys=[pub], require_signature=True)
    assert load_bundle(bundle, trusted_keys=[pub]).signed_by is None  # not required: accepted (a warning)
    refused(bundle, "signature", require_signature=True)  # required, but nothing to check it with


def test_signature_by_wrong_key_is_refused(bundle, tmp_path):
    from wm_control.world.bundle import sign_bundle

    attacker, _ = keypair(tmp_path, "attacker")
    _, trusted = keypair(tmp_path, "ours")
    sign_bundle(bundle, attacker)
    assert "not one of the trusted keys" in refused(bundle, "signature", trusted_keys=[trusted],
                                                    require_signature=True)


def test_keypair_is_never_overwritten(tmp_path):
    from wm_control.world.bundle import generate_keypair

    generate_keypair(tmp_path, "k")
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path, "k")


# ---- TensorRT engine cache ------------------------------------------------------------------------------
class FakeOrtSession:
    """Stands in for onnxruntime.InferenceSession: records what it was given (no GPU here)."""

    made: list = []

    def __init__(self, model, sess_options=None, providers=None):
        self.model, self.provider_args = model, providers
        FakeOrtSession.made.append(self)

    def get_providers(self):
        return [p[0] if isinstance(p, tuple) else p for p in self.provider_args]

    def get_inputs(self):
        return []

    def get_outputs(self):
        return []


def trt_options(sess):
    return next(opts for p, opts in (a for a in sess.sess.provider_args if isinstance(a, tuple))
                if p == "TensorrtExecutionProvider")


@pytest.fixture
def fake_tensorrt(monkeypatch):
    import onnxruntime

    import wm_control.world.bundle as B

    FakeOrtSession.made = []
    monkeypatch.setattr(B, "choose_providers", lambda device: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                               "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeOrtSession)


def test_tensorrt_engine_cache_is_keyed_by_bundle_id(bundle, tmp_path, fake_tensorrt):
    from wm_control.world.bundle import Session

    b = load_bundle(bundle)
    sess = b.session("policy", "auto", warmup=0)
    opts = trt_options(sess)
    want = bundle / ".trt_cache" / b.id[:16]
    assert opts["trt_engine_cache_path"] == str(want) == str(b.trt_cache) and want.is_dir()
    assert opts["trt_timing_cache_path"] == str(want)
    assert sess.sess.model == (bundle / "policy.onnx").read_bytes()  # the bytes that were hashed
    # another bundle in the same folder (same graph structure, other weights): never the old engines
    rewrite_graph(bundle)
    b2 = load_bundle(bundle)
    opts2 = trt_options(b2.session("policy", "auto", warmup=0))
    assert b2.id != b.id and opts2["trt_engine_cache_path"] == str(bundle / ".trt_cache" / b2.id[:16])
    # a Session made directly, without a bundle id, is keyed by its graph's own sha256
    direct = Session(bundle / "policy.onnx", {}, "auto", cache_dir=bundle / ".trt_cache", warmup=0)
    digest = hashlib.sha256((bundle / "policy.onnx").read_bytes()).hexdigest()
    assert trt_options(direct)["trt_engine_cache_path"] == str(bundle / ".trt_cache" / digest[:16])


def test_graph_swapped_after_verification_is_refused_at_session_build(bundle, tmp_path, fake_tensorrt):
    b = load_bundle(bundle)
    data = bytearray((bundle / "policy.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="check 'sha256'"):
        b.session("policy", "auto", warmup=0)
    assert FakeOrtSession.made == []


# ---- limits: never looser than the robot's own ----------------------------------------------------------
def manifest_robot(**kw):
    return {"joint_names": JOINTS, "control_rate": 50.0, "max_step": 0.15,
            "position_limits": [[-3.0, 3.0], [-3.0, 3.0]], **kw}


def test_null_manifest_limits_do_not_mean_no_limits():
    from wm_control.world.bundle import effective_limits

    lim = effective_limits(manifest_robot(position_limits=[[None, None], [None, None]], max_step=1000.0),
                           {"lower": [-1.0, -1.5], "upper": [1.0, 1.5], "max_step": 0.05})
    assert lim.lower == [-1.0, -1.5] and lim.upper == [1.0, 1.5] and lim.continuous == [False, False]
    assert lim.max_step == [0.05, 0.05]


def test_limits_are_the_tighter_of_robot_and_bundle(tmp_path):
    from wm_control.world.bundle import effective_limits, urdf_limits

    robot = {"joint_names": JOINTS[::-1], "lower": [-0.5, -4.0], "upper": [0.5, 4.0], "max_step": 0.3}
    lim = effective_limits(manifest_robot(), robot)  # the robot's lists are in its own joint order
    assert lim.lower == [-3.0, -0.5] and lim.upper == [3.0, 0.5]
    assert lim.max_step == [0.15, 0.15]  # the robot's 0.3 does not loosen the bundle's 0.15
    urdf = tmp_path / "arm.urdf"
    urdf.write_text("""<robot name="r"><link name="a"/><link name="b"/><link name="c"/>
      <joint name="joint0" type="revolute"><parent link="a"/><child link="b"/>
        <limit lower="-2.0" upper="2.5" velocity="1.0" effort="1"/></joint>
      <joint name="joint1" type="continuous"><parent link="b"/><child link="c"/>
        <limit velocity="20" effort="1"/></joint>
    </robot>""")
    lim = effective_limits(manifest_robot(position_limits=[[-3.0, 3.0], [None, None]]), urdf_limits(urdf, JOINTS))
    assert lim.lower[0] == -2.0 and lim.upper[0] == 2.5 and lim.continuous == [False, True]
    assert lim.max_step == pytest.approx([1.0 / 50.0, 0.15])  # velocity / rate where tighter


def test_manifest_control_rate_above_max_control_rate_is_refused():
    from wm_control.world.bundle import effective_limits

    with pytest.raises(BundleError, match="check 'control_rate'"):
        effective_limits(manifest_robot(control_rate=500.0), {}, max_control_rate=100.0)
    assert effective_limits(manifest_robot(), {}, max_control_rate=100.0).control_rate == 50.0


def test_manifest_joint_names_not_the_robots_are_refused():
    from wm_control.world.bundle import effective_limits

    with pytest.raises(BundleError, match="check 'joint_names'"):
        effective_limits(manifest_robot(), {"joint_names": ["shoulder", "elbow"]})
    with pytest.raises(BundleError, match="check 'limits'"):  # no overlap is not "no limits"
        effective_limits(manifest_robot(), {"lower": [3.5, -1.0], "upper": [4.0, 1.0]})


def test_policy_node_limits_never_looser_than_its_parameters(bundle):
    """The policy node's wiring (PolicyNode._limits on a stand-in for the node): a manifest max_step of
    1000 and null limits (resealed by a consistent attacker) still give the parameters' limits."""
    from wm_control.ros.nodes.policy import PolicyConfig, PolicyNode

    m = read(bundle)
    m["robot"].update(max_step=1000.0, position_limits=None, control_rate=500.0)
    write(bundle, reseal(m))
    b = load_bundle(bundle)
    me = SimpleNamespace(bundle=b, names=b.joint_names,
                         cfg=PolicyConfig(bundle=str(bundle), rate=50.0, max_step=0.05,
                                          position_lower=[-1.0, -1.5], position_upper=[1.0, 1.5]))
    lim = PolicyNode._limits(me)
    assert lim.max_step == [0.05, 0.05] and lim.lower == [-1.0, -1.5] and lim.control_rate == 50.0
    me.cfg = PolicyConfig(bundle=str(bundle), max_step=0.05, position_lower=[-1.0, -1.5], position_upper=[1.0, 1.5])
    with pytest.raises(BundleError, match="check 'control_rate'"):  # the bundle's 500 Hz, over the default 100
        PolicyNode._limits(me)


# ---- no pickle: training state is tensors and plain types only -----------------------------------------
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _visual_cfg():
    from wm_control.train.visual import visual_preset

    return visual_preset("debug", jepa_steps=4, ckpt_every=2, jepa_batch=4)


def test_pickle_planted_as_resume_state_does_not_execute(tmp_path):
    import torch

    from wm_control.train.visual import train_encoder

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"encoder": _Payload(marker)}, out / "encoder_state.pt")
    with pytest.raises(RuntimeError, match="refusing to resume"):
        train_encoder(_visual_cfg(), [], out, resume=True)
    assert not marker.exists()


def test_real_resume_state_still_loads(tmp_path, capsys):
    import torch

    from wm_control.train.visual import VideoEpisode, train_encoder

    cfg = _visual_cfg()
    rng = np.random.default_rng(0)
    eps = [VideoEpisode(frames=rng.integers(0, 255, (10, cfg.image_size, cfg.image_size, 3), dtype=np.uint8),
                        command=np.zeros((10, 2)), q=np.zeros((10, 2)), goal=None, source="test") for _ in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_encoder(cfg, eps, tmp_path, max_steps=2)["stopped_at"] == 2
        train_encoder(cfg, eps, tmp_path, resume=True)
    finally:
        torch.set_num_threads(threads)
    assert "resumed at step 2" in capsys.readouterr().err and (tmp_path / "encoder.pt").exists()


def test_bundle_cli_keygen_sign_verify(debug_bc, tmp_path):
    """wm-control bundle keygen / sign / verify: a signed bundle verifies with its key, an edited one is
    refused in one line."""
    import shutil
    import subprocess
    import sys

    b = tmp_path / "b"
    shutil.copytree(debug_bc[1], b)

    def wm(*args):
        return subprocess.run([sys.executable, "-m", "wm_control", "bundle", *args], capture_output=True, text=True,
                              timeout=60)

    assert wm("keygen", str(tmp_path / "keys")).returncode == 0
    r = wm("sign", str(b), "--key", str(tmp_path / "keys" / "bundle_signing.key"))
    assert r.returncode == 0, r.stderr
    pub = str(tmp_path / "keys" / "bundle_signing.pub")
    r = wm("verify", str(b), "--trusted-key", pub, "--require-signature")
    assert r.returncode == 0 and "ok, id " in r.stdout and "signed by key" in r.stdout, r.stdout + r.stderr
    bid = r.stdout.split("id ")[1].split(",")[0]
    assert wm("verify", str(b), "--expect-id", bid).returncode == 0
    m = (b / "manifest.yaml").read_text().replace("max_step: ", "max_step: 1000 #", 1)
    (b / "manifest.yaml").write_text(m)
    r = wm("verify", str(b))
    assert r.returncode == 2 and "bundle_id" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
