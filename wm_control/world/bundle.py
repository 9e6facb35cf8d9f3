"""Model bundles: a folder of ONNX graphs plus ``manifest.yaml``, verified before anything runs.

Layout::

    bundle/
      manifest.yaml    format, bundle_id, robot (joint names and order, control rate, limits), camera
                       (image size, crop), graphs (file, inputs, outputs with shapes), normalisers,
                       thresholds, training config, metrics, sha256 of every file
      policy.onnx      ... any graphs the manifest lists
      bundle.sig       optional: an ed25519 signature over the bundle id (:func:`sign_bundle`)
      .trt_cache/<bundle_id[:16]>/   TensorRT engines built on this machine (never shipped, never hashed)

**The bundle id** (:func:`compute_bundle_id`) is the sha256 of the canonical manifest: every field except
``bundle_id`` itself, as sorted, compact JSON, so YAML formatting, comments and key order do not matter but
every value does. The manifest's ``files`` section holds the sha256 of every file's bytes and
:func:`load_bundle` checks each of them, so the id covers every file's bytes too: changing any graph, any
limit, the control rate or the joint names changes the id. It is written *into* ``manifest.yaml`` (by
:func:`write_bundle`) rather than into a sibling file because the manifest is the one thing a bundle cannot
be used without: copying it copies its id, there is no second file to forget or to mix up between two
copies, and no reader has to know another file name. The id is not a secret and not a signature: anyone who
rewrites a graph, its sha256 and the id in the manifest (a consistent attacker) makes a bundle that verifies.
It catches every edit that was not resealed (hand edits of the manifest, a partial copy, a flipped bit), and
it is the name of the exact bundle, so it can be **pinned** (``load_bundle(..., expect_id=ID)``, the nodes'
``bundle_id`` parameter) or **signed** (``bundle.sig``, kept beside the manifest and outside the id so
that signing, re-signing or a second key never changes the id; ``load_bundle(..., trusted_keys=[...],
require_signature=True)``). Pinning or a required signature is what refuses a consistent attacker.
Bundles written before ids (format ``wm_control.world.bundle/1``) are refused: they cannot be trusted, re-export.

:func:`load_bundle` verifies, in this order, and refuses with a one-line :class:`BundleError` naming the
check that failed: the manifest parses and has the format version; every listed file stays inside the folder
(no ``..``, no absolute path, no link out: check ``paths``), exists and its sha256 matches; the manifest
matches its ``bundle_id``; the id equals the pinned one (``pin``); the signature (``signature``); no unlisted
ONNX file is present; the robot's joint names (when given) equal the bundle's; the camera size (when given)
equals the bundle's; each graph's ONNX inputs/outputs match what the manifest declares and no graph reads
external data. Then :meth:`Bundle.session` builds ONNX Runtime sessions from the verified bytes (the file's
sha256 is checked again as it is read) with the provider chosen by ``device`` (``auto``: TensorRT (fp16,
engine cache keyed by the bundle id) -> CUDA -> CPU), warmed up.

:func:`effective_limits` intersects the bundle's limits with the robot's own (URDF, parameters): the
tighter of each bound, the smaller ``max_step``, a control rate never above ``max_control_rate``; a bundle
for other joints is refused.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

FORMAT = "wm_control.bundle/2"
OLD_FORMATS = ("wm_control.bundle/1",)
"""Formats of bundles written before bundle ids: refused, with a hint to re-export."""
ID_FIELD = "bundle_id"
SIG_FILE = "bundle.sig"
SIG_FORMAT = "wm_control.bundle-sig/1"
TRT_CACHE = ".trt_cache"
DEFAULT_MAX_STEP = 0.1
"""rad per tick when neither the bundle nor the robot gives one (as before)."""
_ID_DOMAIN = b"wm_control.bundle-id/1\n"
_SIG_DOMAIN = b"wm_control.bundle-sig/1\n"
_RESERVED = ("manifest.yaml", SIG_FILE)
REEXPORT = ("re-export it (`wm-control export CHECKPOINT --out BUNDLE`, or the `wm-control train ... --bundle OUT` "
            "that made it)")
log = logging.getLogger("wm_control.world.bundle")


class BundleError(RuntimeError):
    """A bundle that must not be used, with the failed check in the message."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------
# Identity
# ------------------------------------------------------------------------------------------
def _plain(x: Any, where: str) -> Any:
    """``x`` as JSON-able plain data; mapping keys become the JSON text of the key (so ``1`` and ``"1"``
    stay distinct); anything that is not plain data (dates, bytes, sets) is refused."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise BundleError(f"check 'manifest': key {k!r} at {where} is not plain data")
            out[json.dumps(k)] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(x, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    raise BundleError(f"check 'manifest': {where} is a {type(x).__name__}, not plain data (string, number, "
                      "bool, null, list, mapping)")


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the bundle id is the sha256 of: the manifest without ``bundle_id``, as sorted compact
    ASCII JSON (floats as Python's shortest round-trip repr; NaN and infinities as NaN/Infinity)."""
    body = {k: v for k, v in manifest.items() if k != ID_FIELD}
    return json.dumps(_plain(body, "manifest"), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True).encode("ascii")


def compute_bundle_id(manifest: Mapping[str, Any]) -> str:
    """The bundle id (64 hex digits) of a parsed manifest: sha256 over :func:`canonical_manifest`, which
    includes the sha256 of every file (``files``), so the id covers every file's bytes as well."""
    return hashlib.sha256(_ID_DOMAIN + canonical_manifest(manifest)).hexdigest()


def _norm_id(value: str, what: str) -> str:
    v = str(value).strip().lower()
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise BundleError(f"check 'pin': {what} must be the full 64-hex-digit bundle id (as `wm-control export` "
                          f"prints it), got {value!r}")
    return v


def _inside(root: Path, name: Any, what: str = "file") -> Path:
    """``root / name``, refused unless it is a relative path that stays inside ``root`` after resolving
    ``..`` and every symbolic link."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BundleError(f"check 'paths': {what} {name!r} is not a file name")
    if os.path.isabs(name) or Path(name).is_absolute() or name.startswith(("/", "\\")):
        raise BundleError(f"check 'paths': {what} {name!r} is an absolute path; bundle files must be inside the "
                          "bundle folder")
    if ".." in Path(name).parts or ".." in name.replace("\\", "/").split("/"):
        raise BundleError(f"check 'paths': {what} {name!r} leaves the bundle folder ('..')")
    base = root.resolve()
    target = (root / name).resolve()
    if target == base or base not in target.parents:
        raise BundleError(f"check 'paths': {what} {name!r} resolves to {target}, outside the bundle folder {base} "
                          "(a link out of the bundle)")
    return root / name


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    sessions: dict[str, Any] = field(default_factory=dict)
    signed_by: str | None = None
    """Key id (:func:`public_key_id`) of the trusted key whose signature was verified; None: not checked."""

    @property
    def joint_names(self) -> list[str]:
        return list(self.manifest["robot"]["joint_names"])

    @property
    def control_rate(self) -> float:
        return float(self.manifest["robot"]["control_rate"])

    @property
    def id(self) -> str:
        """The bundle id (64 hex digits; verified by :func:`load_bundle`): what to pin or sign."""
        return str(self.manifest[ID_FIELD])

    @property
    def trt_cache(self) -> Path:
        """Where TensorRT engines for this bundle live: ``<bundle>/.trt_cache/<id[:16]>/``."""
        return trt_cache_dir(self.path / TRT_CACHE, self.id)

    def graph(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["graphs"][name]
        except KeyError:
            raise BundleError(f"bundle {self.path} has no graph {name!r}; it has "
                              f"{sorted(self.manifest.get('graphs', {}))}") from None

    def session(self, name: str, device: str = "auto", warmup: int = 20, threads: int = 1) -> "Session":
        if name not in self.sessions:
            spec = self.graph(name)
            self.sessions[name] = Session(_inside(self.path, spec["file"], f"graph {name!r} file"), spec, device,
                                          cache_dir=self.path / TRT_CACHE, warmup=warmup, threads=threads,
                                          cache_key=self.id, sha256=self.manifest["files"].get(spec["file"]))
        return self.sessions[name]


# ------------------------------------------------------------------------------------------
# ONNX Runtime
# ------------------------------------------------------------------------------------------
def choose_providers(device: str) -> list[Any]:
    """Provider list for ``device``; a device that is asked for but unavailable is an error."""
    import onnxruntime as ort

    avail = set(ort.get_available_providers())
    device = device.lower()
    chain = {"auto": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
             "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "cpu": ["CPUExecutionProvider"]}
    if device not in chain:
        raise BundleError(f"device must be auto, tensorrt, cuda or cpu, not {device!r}")
    if device == "tensorrt" and "TensorrtExecutionProvider" not in avail:
        raise BundleError(f"device tensorrt asked for, but this onnxruntime offers {sorted(avail)} "
                          f"(install onnxruntime-gpu with TensorRT libraries)")
    if device == "cuda" and "CUDAExecutionProvider" not in avail:
        raise BundleError(f"device cuda asked for, but this onnxruntime offers {sorted(avail)} "
                          f"(install onnxruntime-gpu)")
    return [p for p in chain[device] if p in avail]


def trt_cache_dir(root: str | Path, key: str) -> Path:
    """The TensorRT engine cache for one bundle (or one graph): ``root / key[:16]``.

    TensorRT's engine (and timing cache) files are built on the robot, for its GPU and TensorRT version,
    after the bundle was made, so no manifest can carry their hash. ONNX Runtime names an engine file
    after the graph's *structure* (and its path), not its weights, so an engine left by another bundle
    with the same layers (a re-trained policy copied over an old folder) would be used with the old
    weights. Keying the folder by the verified bundle id (``key``; a graph's own sha256 where no bundle id
    is given) is the guard: an engine built for any other bundle is never looked up. It does not defend
    against someone who can write into the cache folder itself: keep it writable by the robot's user only
    (or delete it to rebuild)."""
    key = str(key).lower()
    if len(key) < 16 or any(c not in "0123456789abcdef" for c in key):
        raise BundleError(f"TensorRT cache key must be a hex bundle id or sha256, got {key!r}")
    return Path(root) / key[:16]


class Session:
    """One ONNX Runtime session with a fixed provider choice, warmed up at construction.

    ``sha256``: the graph's expected sha256 (from the verified manifest); the bytes ONNX Runtime gets are
    the bytes hashed here, so the file cannot be swapped between verification and loading. ``cache_key``:
    the bundle id the TensorRT engine cache is keyed by (:func:`trt_cache_dir`; default: the graph's sha256).
    """

    def __init__(self, path: Path, spec: dict[str, Any], device: str = "auto", cache_dir: Path | None = None,
                 warmup: int = 20, threads: int = 1, cache_key: str | None = None, sha256: str | None = None):
        import onnxruntime as ort

        providers = choose_providers(device)
        path = Path(path)
        try:
            model = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"check 'files': cannot read {path}: {exc}") from None
        digest = hashlib.sha256(model).hexdigest()
        if sha256 is not None and digest != sha256:
            raise BundleError(f"check 'sha256': {path.name} has sha256 {digest[:16]}..., the manifest says "
                              f"{str(sha256)[:16]}... (modified after the bundle was verified)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # control loops: one thread, no spin-wait jitter
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        prov_args: list[Any] = []
        self.cache_dir: Path | None = None
        for p in providers:
            if p == "TensorrtExecutionProvider":
                self.cache_dir = trt_cache_dir(cache_dir or (path.parent / TRT_CACHE), cache_key or digest)
                os.makedirs(self.cache_dir, exist_ok=True)
                cache = str(self.cache_dir)
                prov_args.append((p, {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                      "trt_engine_cache_path": cache, "trt_timing_cache_enable": True,
                                      "trt_timing_cache_path": cache}))
            else:
                prov_args.append(p)
        try:
            self.sess = ort.InferenceSession(model, sess_options=opts, providers=prov_args)
        except Exception as exc:
            raise BundleError(f"onnxruntime cannot load {path.name}: {exc}") from None
        self.providers = self.sess.get_providers()
        self.spec = spec
        self.input_names = [i.name for i in self.sess.get_inputs()]
        self.output_names = [o.name for o in self.sess.get_outputs()]
        if warmup:
            dummy = {i.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in i.shape],
                                      dtype=_np_type(i.type)) for i in self.sess.get_inputs()}
            for _ in range(warmup):
                self.sess.run(None, dummy)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        out = self.sess.run(None, inputs)
        return dict(zip(self.output_names, out))


def _np_type(onnx_type: str) -> Any:
    return {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16,
            "tensor(bool)": np.bool_}.get(onnx_type, np.float32)


# ------------------------------------------------------------------------------------------
# Writing and verifying
# ------------------------------------------------------------------------------------------
def write_bundle(out: str | Path, graphs: dict[str, tuple[Path, dict[str, Any]]], robot: dict[str, Any],
                 camera: dict[str, Any] | None = None, normalizers: dict[str, Any] | None = None,
                 thresholds: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, extra_files: Sequence[Path] = (),
                 overwrite: bool = True, sections: dict[str, Any] | None = None) -> Path:
    """Write a bundle folder: copy the graphs (``name -> (onnx path, io spec)``) and write the manifest
    with its ``bundle_id`` (:func:`compute_bundle_id`; read it back with ``load_bundle(out).id``).
    ``sections`` are further top-level manifest sections (e.g. ``visual``: the world model's sizes)."""
    out = Path(out)
    for f in extra_files:
        if Path(f).name in _RESERVED:
            raise BundleError(f"extra file {Path(f).name!r} has a reserved bundle file name")
    if out.exists():
        if not overwrite:
            raise BundleError(f"bundle {out} exists")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files: dict[str, str] = {}
    gspec: dict[str, Any] = {}
    for name, (src, spec) in graphs.items():
        dst = out / f"{name}.onnx"
        shutil.copy2(src, dst)
        gspec[name] = {"file": dst.name, **spec}
    for f in extra_files:
        shutil.copy2(f, out / Path(f).name)
    for f in sorted(out.iterdir()):
        if f.is_file():
            files[f.name] = sha256_file(f)
    manifest = {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "robot": robot, "camera": camera or {}, "graphs": gspec, "normalizers": normalizers or {},
        "thresholds": thresholds or {}, "training": training or {}, "metrics": metrics or {},
        **(sections or {}), "files": files,
    }
    if ID_FIELD in manifest:
        raise BundleError(f"{ID_FIELD!r} is reserved for the bundle id")
    manifest = yaml.safe_load(yaml.safe_dump(manifest, sort_keys=False))  # the id of what readers will see
    bid = compute_bundle_id(manifest)
    text = yaml.safe_dump({"format": manifest.pop("format"), ID_FIELD: bid, **manifest}, sort_keys=False)
    if compute_bundle_id(yaml.safe_load(text)) != bid:  # cannot happen: safe_dump round-trips plain data
        raise BundleError("check 'bundle_id': the manifest does not round-trip through YAML")
    (out / "manifest.yaml").write_text(text)
    return out


def load_bundle(path: str | Path, joint_names: Sequence[str] | None = None,
                image_size: tuple[int, int] | None = None, check_graphs: bool = True, *,
                expect_id: str | None = None, trusted_keys: Sequence[str | Path] | None = None,
                require_signature: bool = False) -> Bundle:
    """Verify a bundle and return it (sessions are built on demand by :meth:`Bundle.session`).

    ``expect_id``: pin, refuse unless the bundle id is this one (all 64 hex digits; None or "": no pin).
    ``trusted_keys``: ed25519 public key PEM files; when given, a ``bundle.sig`` must be a valid signature
    of this bundle's id by one of them (an invalid one, or one by another key, is refused even when not
    required). ``require_signature``: refuse a bundle without such a signature (needs ``trusted_keys``).
    A consistent rewrite (graph, its sha256 and the id all changed together) passes every other check:
    only a pin or a required signature refuses it."""
    path = Path(path)
    if require_signature and not trusted_keys:
        raise BundleError("check 'signature': require_signature needs trusted_keys (public key files)")
    pin = _norm_id(expect_id, "the pinned id (expect_id / bundle_id)") if expect_id else None
    mpath = path / "manifest.yaml"
    if not mpath.is_file():
        raise BundleError(f"check 'manifest': {mpath} not found (is {path} a wm_control bundle?)")
    _inside(path, "manifest.yaml")
    try:
        manifest = yaml.safe_load(mpath.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        msg = " ".join(str(exc).split())
        raise BundleError(f"check 'manifest': {mpath} is not valid YAML: {msg}") from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt in OLD_FORMATS:
        raise BundleError(f"check 'bundle_id': {path} has format {fmt!r}, written before bundle ids, so it cannot "
                          f"be verified or trusted: {REEXPORT}")
    if not isinstance(manifest, dict) or fmt != FORMAT:
        raise BundleError(f"check 'format': expected format {FORMAT!r}, got "
                          f"{fmt if isinstance(manifest, dict) else type(manifest).__name__!r}")
    for key in ("robot", "graphs", "files"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"check 'manifest': section {key!r} missing or not a mapping")
    files = manifest["files"]
    for name in files:
        _inside(path, name)
    for name, g in manifest["graphs"].items():
        _inside(path, (g or {}).get("file") if isinstance(g, dict) else None, f"graph {name!r} file")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"check 'files': {name} is listed in the manifest but missing")
        got = sha256_file(f)
        if got != digest:
            raise BundleError(f"check 'sha256': {name} has sha256 {got[:16]}..., the manifest says "
                              f"{str(digest)[:16]}... (corrupt or modified file)")
    stored = manifest.get(ID_FIELD)
    if not stored:
        raise BundleError(f"check 'bundle_id': {mpath} has no {ID_FIELD}, so it cannot be verified or trusted: "
                          f"{REEXPORT}")
    bid = compute_bundle_id(manifest)
    if str(stored).strip().lower() != bid:
        raise BundleError(f"check 'bundle_id': the manifest's content has id {bid[:16]}... but it says "
                          f"{str(stored)[:16]}...: manifest.yaml was edited after export (limits, rates, joint names "
                          f"or any field); do not use it, {REEXPORT}")
    manifest[ID_FIELD] = bid
    if pin is not None and bid != pin:
        raise BundleError(f"check 'pin': bundle {path} has id {bid}, the pinned id is {pin}")
    signed_by = _check_signature(path, bid, trusted_keys, require_signature) if trusted_keys else None
    unlisted = [f.name for f in path.glob("*.onnx") if f.name not in files]
    if unlisted:
        raise BundleError(f"check 'files': ONNX files not in the manifest: {unlisted}")
    for name, g in manifest["graphs"].items():
        if g.get("file") not in files:
            raise BundleError(f"check 'graphs': graph {name!r} file {g.get('file')!r} is not a listed file")
    bundle_joints = list(manifest["robot"].get("joint_names", []))
    if joint_names is not None and list(joint_names) != bundle_joints:
        raise BundleError(f"check 'joint_names': the robot has joints {list(joint_names)} but the bundle was "
                          f"trained for {bundle_joints} (names and order must match)")
    cam = manifest.get("camera") or {}
    if image_size is not None and cam:
        want = (int(cam.get("width", -1)), int(cam.get("height", -1)))
        if tuple(image_size) != want:
            raise BundleError(f"check 'image_size': the camera config gives {image_size[0]}x{image_size[1]} but "
                              f"the bundle expects {want[0]}x{want[1]}")
    if check_graphs:
        _check_graph_io(path, manifest)
    return Bundle(path, manifest, signed_by=signed_by)


def _all_tensors(model: Any):
    """Every TensorProto of a model: initializers and tensor attributes, subgraphs included."""
    def graph(g):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    yield from graph(a.g)
                for sub in a.graphs:
                    yield from graph(sub)
    yield from graph(model.graph)


def _check_graph_io(path: Path, manifest: dict[str, Any]) -> None:
    import onnx

    for name, g in manifest["graphs"].items():
        try:
            model = onnx.load(str(path / g["file"]), load_external_data=False)
            onnx.checker.check_model(model)
        except Exception as exc:
            msg = " ".join(str(exc).split())
            raise BundleError(f"check 'onnx': graph {name!r} ({g['file']}) is not a valid ONNX model: {msg}") from None
        external = [t.name for t in _all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]
        if external:
            raise BundleError(f"check 'paths': graph {name!r} reads tensors {external[:3]} from external files, "
                              "which bundles do not hash or allow")

        def io(values: Any) -> dict[str, list]:
            return {v.name: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
                    for v in values}

        def compatible(decl: dict[str, list], act: dict[str, list]) -> bool:
            """Same names and ranks; a dimension conflicts only when both sides give different sizes."""
            return decl.keys() == act.keys() and all(
                len(decl[k]) == len(act[k]) and all(a == b or a < 0 or b < 0 for a, b in zip(decl[k], act[k]))
                for k in decl)

        for kind, actual in (("inputs", io(model.graph.input)), ("outputs", io(model.graph.output))):
            declared = {k: list(v["shape"]) for k, v in (g.get(kind) or {}).items()}
            if not compatible(declared, actual):
                raise BundleError(f"check 'graph_io': graph {name!r} {kind} are {actual} but the manifest "
                                  f"declares {declared}")


# ------------------------------------------------------------------------------------------
# Signatures (ed25519 over the bundle id, detached in bundle.sig)
# ------------------------------------------------------------------------------------------
def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_id(key_or_path: Any) -> str:
    """Short name of an ed25519 public key: the first 16 hex digits of sha256 over its 32 raw bytes."""
    key = _load_public_key(key_or_path) if isinstance(key_or_path, (str, Path)) else key_or_path
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def _load_public_key(path: str | Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"check 'signature': cannot read the trusted key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"check 'signature': trusted key {path} is a {type(key).__name__}, not ed25519")
    return key


def _sig_message(bundle_id: str) -> bytes:
    return _SIG_DOMAIN + bundle_id.encode("ascii")


def generate_keypair(directory: str | Path, name: str = "bundle_signing") -> tuple[Path, Path]:
    """A new ed25519 key pair: ``<directory>/<name>.key`` (PKCS#8 PEM, unencrypted, mode 0600: keep it off
    the robot) and ``<directory>/<name>.pub`` (SubjectPublicKeyInfo PEM: give it to the nodes as a trusted
    key). Refuses to overwrite either file. Returns ``(private_path, public_path)``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = d / f"{name}.key", d / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists():
            raise FileExistsError(f"{p} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def sign_bundle(path: str | Path, private_key_pem_path: str | Path, password: bytes | None = None) -> Path:
    """Verify the bundle, then write ``<bundle>/bundle.sig``: an ed25519 signature over its bundle id (a
    detached signature: the id, and so the manifest and every file, are unchanged). Replaces an earlier
    signature. Returns the signature file's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    b = load_bundle(path)
    try:
        key = serialization.load_pem_private_key(Path(private_key_pem_path).read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"cannot read the signing key {private_key_pem_path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"signing key {private_key_pem_path} is a {type(key).__name__}, not ed25519")
    sig = {"format": SIG_FORMAT, ID_FIELD: b.id, "key_id": public_key_id(key.public_key()),
           "signature": base64.b64encode(key.sign(_sig_message(b.id))).decode("ascii")}
    out = path / SIG_FILE
    tmp = path / f".{SIG_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(sig, sort_keys=False))
    os.replace(tmp, out)
    return out


def _check_signature(path: Path, bundle_id: str, trusted_keys: Sequence[str | Path],
                     require: bool) -> str | None:
    """The key id of the trusted key that signed ``bundle_id`` in ``path/bundle.sig``; None when there is
    no signature and none is required; BundleError for an invalid one, one by an untrusted key, one for
    another bundle, or a missing one that is required."""
    from cryptography.exceptions import InvalidSignature

    keys = {}
    for k in trusted_keys:
        key = _load_public_key(k)
        keys[public_key_id(key)] = key
    sig_path = path / SIG_FILE
    if not sig_path.exists():
        if require:
            raise BundleError(f"check 'signature': {path} is not signed ({SIG_FILE} missing) and a signature by one "
                              f"of the trusted keys {sorted(keys)} is required")
        log.warning("bundle %s is not signed (no %s); accepted because no signature is required", path, SIG_FILE)
        return None
    _inside(path, SIG_FILE)
    try:
        sig = yaml.safe_load(sig_path.read_text())
        if not isinstance(sig, dict) or sig.get("format") != SIG_FORMAT:
            raise ValueError(f"format is not {SIG_FORMAT!r}")
        raw = base64.b64decode(str(sig["signature"]), validate=True)
        signed_id, key_id = str(sig[ID_FIELD]).lower(), str(sig.get("key_id", ""))
    except Exception as exc:
        msg = " ".join(str(exc).split())
        raise BundleError(f"check 'signature': {sig_path} is malformed ({type(exc).__name__}: {msg})") from None
    if signed_id != bundle_id:
        raise BundleError(f"check 'signature': {SIG_FILE} signs bundle {signed_id[:16]}..., this bundle is "
                          f"{bundle_id[:16]}... (changed after signing)")
    for kid, key in sorted(keys.items(), key=lambda kv: kv[0] != key_id):  # the named key first
        try:
            key.verify(raw, _sig_message(bundle_id))
            return kid
        except InvalidSignature:
            continue
    if key_id not in keys:
        raise BundleError(f"check 'signature': {path} is signed by key {key_id or '?'}, which is not one of the "
                          f"trusted keys {sorted(keys)}")
    raise BundleError(f"check 'signature': {SIG_FILE} is not a valid signature of this bundle by key {key_id} "
                      "(tampered)")


# ------------------------------------------------------------------------------------------
# Limits: never looser than the robot's own
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EffectiveLimits:
    """What the safety layer enforces, per joint in the bundle's joint order (see :func:`effective_limits`)."""

    joint_names: list[str]
    lower: list[float]
    upper: list[float]
    continuous: list[bool]
    max_step: list[float]
    control_rate: float

    def safety_config(self, max_input_age: Mapping[str, float], margin: float = 0.0):
        """A :class:`wm_control.control.safety.SafetyConfig` with these limits."""
        from wm_control.control.safety import SafetyConfig

        return SafetyConfig(joint_names=list(self.joint_names), lower=list(self.lower), upper=list(self.upper),
                            max_step=list(self.max_step), max_input_age=dict(max_input_age), margin=margin,
                            continuous=list(self.continuous))


def urdf_limits(path_or_text: str | Path, joint_names: Sequence[str]) -> dict[str, Any]:
    """The robot's own limits of ``joint_names`` from a URDF (soft limits applied; velocity limits), as one
    ``robot_limits`` source for :func:`effective_limits`. A joint the URDF lacks is a ValueError."""
    from wm_control.control.urdf import joint_limits_from_urdf

    lim = joint_limits_from_urdf(path_or_text, joint_names)
    names = list(joint_names)
    return {"joint_names": names, "lower": [lim[j].lower for j in names], "upper": [lim[j].upper for j in names],
            "velocity": [lim[j].velocity for j in names]}


def _bound(v: Any, default: float, what: str, problem: type[Exception]) -> float:
    if v is None:
        return default
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise problem(f"{what} is {v!r}, not a number") from None
    if math.isnan(x):
        raise problem(f"{what} is NaN")
    return x


def _positive(v: Any, what: str, problem: type[Exception]) -> float | None:
    """A finite step / rate > 0, or None when not given (None or 0)."""
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise problem(f"{what} is {v!r}, not a number") from None
    if not (math.isfinite(x) and x > 0):
        raise problem(f"{what} must be finite and > 0, got {v!r}")
    return x


def _per_joint(v: Any, n: int, what: str, problem: type[Exception]) -> list[Any]:
    if v is None:
        return [None] * n
    if isinstance(v, (list, tuple, np.ndarray)):
        if len(v) != n:
            raise problem(f"{what} has {len(v)} values for {n} joints")
        return list(v)
    return [v] * n


def effective_limits(bundle_manifest_limits: Bundle | Mapping[str, Any],
                     robot_limits: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None, *,
                     max_control_rate: float | None = None) -> EffectiveLimits:
    """The safety limits to enforce: never looser than the robot's own, nor than the bundle's.

    ``bundle_manifest_limits``: a :class:`Bundle` or its manifest's ``robot`` section (``joint_names``,
    ``position_limits`` ``[[lower, upper], ...]`` with null for "none given", ``max_step`` (rad per tick, one
    or per joint), ``control_rate``). ``robot_limits``: one source of the robot's own limits or a list of
    them (a URDF via :func:`urdf_limits`, parameters), every key optional: ``joint_names`` (the robot's
    joints; per-joint lists below are in this order, else in the bundle's), ``lower``/``upper`` (None or
    -inf/inf: no bound on that side), ``velocity`` (rad/s; bounds the step to
    velocity / control rate), ``max_step``, ``control_rate`` (Hz; None/0: the bundle's).

    Result: per joint, the largest lower and smallest upper bound of all sources (a null bound in the
    manifest never removes the robot's), the smallest ``max_step`` (``DEFAULT_MAX_STEP`` when no source
    gives one); the robot's control rate if it gives one, else the bundle's. Refused (BundleError): a robot
    source whose ``joint_names`` are not the bundle's names (states are read by name and commands mapped
    by the controller's joint order, so the order may differ; only the id, a pin or a signature can tell a
    permuted manifest from an honest one), bounds that do not overlap, a half-open range, no position
    limits from any source, an invalid bundle ``max_step`` or rate, a rate above ``max_control_rate``.
    A malformed robot source is a ValueError (configuration, not bundle)."""
    rb = bundle_manifest_limits.manifest["robot"] if isinstance(bundle_manifest_limits, Bundle) \
        else dict(bundle_manifest_limits)
    names = list(rb.get("joint_names") or [])
    n = len(names)
    if n == 0:
        raise BundleError("check 'joint_names': the bundle names no joints")
    if robot_limits is None:
        sources: list[Mapping[str, Any]] = []
    elif isinstance(robot_limits, Mapping):
        sources = [robot_limits]
    else:
        sources = list(robot_limits)

    lo, hi = [-math.inf] * n, [math.inf] * n
    steps: list[list[float]] = [[] for _ in range(n)]
    any_position = False

    limits = rb.get("position_limits")
    if limits is not None:
        if not isinstance(limits, (list, tuple)) or len(limits) != n:
            raise BundleError(f"check 'limits': robot.position_limits must have one [lower, upper] per joint {names}")
        for i, pair in enumerate(limits):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise BundleError(f"check 'limits': robot.position_limits[{i}] is {pair!r}, not [lower, upper]")
            what = f"check 'limits': bundle lower limit of {names[i]}"
            lo[i] = max(lo[i], _bound(pair[0], -math.inf, what, BundleError))
            what = f"check 'limits': bundle upper limit of {names[i]}"
            hi[i] = min(hi[i], _bound(pair[1], math.inf, what, BundleError))
        any_position = True
    for i, s in enumerate(_per_joint(rb.get("max_step"), n, "check 'limits': bundle max_step", BundleError)):
        x = _positive(s, f"check 'limits': bundle max_step of {names[i]}", BundleError)
        if x is not None:
            steps[i].append(x)
    bundle_rate = _positive(rb.get("control_rate"), "check 'control_rate': bundle control_rate", BundleError)

    robot_rates = []
    for src in sources:
        r = _positive(src.get("control_rate"), "robot control_rate", ValueError)
        if r is not None:
            robot_rates.append(r)
    rate = min(robot_rates) if robot_rates else bundle_rate
    if rate is None:
        raise BundleError("check 'control_rate': neither the bundle nor the robot gives a control rate")
    if max_control_rate:
        cap = _positive(max_control_rate, "max_control_rate", ValueError)
        if rate > cap:
            whose = "the configured rate" if robot_rates else "the bundle's control_rate"
            raise BundleError(f"check 'control_rate': {whose} {rate:g} Hz is above max_control_rate {cap:g} Hz")

    for src in sources:
        order = src.get("joint_names")
        if order:
            order = list(order)
            if sorted(order) != sorted(names) or len(set(order)) != len(order):
                raise BundleError(f"check 'joint_names': the robot has joints {order} but the bundle was made for "
                                  f"{names}")
            idx = [order.index(j) for j in names]
        else:
            idx = list(range(n))

        def pick(key: str) -> list[Any] | None:
            v = src.get(key)
            if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
                return None
            vals = _per_joint(v, n, f"robot {key}", ValueError)
            return [vals[k] for k in idx]

        lower, upper = pick("lower"), pick("upper")
        if (lower is None) != (upper is None):
            raise ValueError("robot lower and upper limits must be given together")
        if lower is not None:
            any_position = True
            for i in range(n):
                lo[i] = max(lo[i], _bound(lower[i], -math.inf, f"robot lower limit of {names[i]}", ValueError))
                hi[i] = min(hi[i], _bound(upper[i], math.inf, f"robot upper limit of {names[i]}", ValueError))
        for i, s in enumerate(pick("max_step") or [None] * n):
            x = _positive(s, f"robot max_step of {names[i]}", ValueError)
            if x is not None:
                steps[i].append(x)
        for i, v in enumerate(pick("velocity") or [None] * n):
            if v is not None and math.isfinite(float(v)):
                x = _positive(v, f"robot velocity limit of {names[i]}", ValueError)
                steps[i].append(x / rate)
    if not any_position:
        raise BundleError("check 'limits': no joint limits: give the robot's (urdf, or position_lower/"
                          "position_upper) or use a bundle whose manifest has robot.position_limits")
    continuous = []
    for i, j in enumerate(names):
        if lo[i] == -math.inf and hi[i] == math.inf:
            continuous.append(True)  # continuous only when no source bounds it: any bound wins
            continue
        if not (math.isfinite(lo[i]) and math.isfinite(hi[i])):
            raise BundleError(f"check 'limits': joint {j!r} is bounded on one side only ({lo[i]}, {hi[i]})")
        if not lo[i] < hi[i]:
            raise BundleError(f"check 'limits': joint {j!r}: the bundle's and the robot's limits do not overlap "
                              f"(lower {lo[i]} >= upper {hi[i]})")
        continuous.append(False)
    return EffectiveLimits(names, lo, hi, continuous, [min(s) if s else DEFAULT_MAX_STEP for s in steps], rate)
