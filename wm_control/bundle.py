"""Model bundles: a folder of ONNX graphs plus ``manifest.yaml``, verified before anything runs.

Layout::

    bundle/
      manifest.yaml    format, robot (joint names and order, control rate), camera (image size,
                       crop), graphs (file, inputs, outputs with shapes), normalisers, thresholds,
                       training config, metrics, sha256 of every file
      policy.onnx      ... any graphs the manifest lists

:func:`load_bundle` verifies, in this order, and refuses with :class:`BundleError` naming the check
that failed: the manifest parses and has the format version; every listed file exists and its
sha256 matches; no unlisted ONNX file is present; the robot's joint names (when given) equal the
bundle's; the camera size (when given) equals the bundle's; each graph's ONNX inputs/outputs match
what the manifest declares. Then :meth:`Bundle.session` builds ONNX Runtime sessions with the
provider chosen by ``device`` (``auto``: TensorRT (fp16, engine cache) -> CUDA -> CPU), warmed up.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

FORMAT = "wm_control.bundle/1"
log = logging.getLogger("wm_control.bundle")


class BundleError(RuntimeError):
    """A bundle that must not be used, with the failed check in the message."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    sessions: dict[str, Any] = field(default_factory=dict)

    @property
    def joint_names(self) -> list[str]:
        return list(self.manifest["robot"]["joint_names"])

    @property
    def control_rate(self) -> float:
        return float(self.manifest["robot"]["control_rate"])

    @property
    def id(self) -> str:
        """Short identity: the sha256 prefix of the manifest (changes with any file's hash)."""
        return sha256_file(self.path / "manifest.yaml")[:12]

    def graph(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["graphs"][name]
        except KeyError:
            raise BundleError(f"bundle {self.path} has no graph {name!r}; it has "
                              f"{sorted(self.manifest.get('graphs', {}))}") from None

    def session(self, name: str, device: str = "auto", warmup: int = 20) -> "Session":
        if name not in self.sessions:
            self.sessions[name] = Session(self.path / self.graph(name)["file"], self.graph(name), device,
                                          cache_dir=self.path / ".trt_cache", warmup=warmup)
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


class Session:
    """One ONNX Runtime session with a fixed provider choice, warmed up at construction."""

    def __init__(self, path: Path, spec: dict[str, Any], device: str = "auto", cache_dir: Path | None = None,
                 warmup: int = 20, threads: int = 1):
        import onnxruntime as ort

        providers = choose_providers(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # control loops: one thread, no spin-wait jitter
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        prov_args: list[Any] = []
        for p in providers:
            if p == "TensorrtExecutionProvider":
                cache = str(cache_dir or (path.parent / ".trt_cache"))
                os.makedirs(cache, exist_ok=True)
                prov_args.append((p, {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                      "trt_engine_cache_path": cache, "trt_timing_cache_enable": True,
                                      "trt_timing_cache_path": cache}))
            else:
                prov_args.append(p)
        try:
            self.sess = ort.InferenceSession(str(path), sess_options=opts, providers=prov_args)
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
    """Write a bundle folder: copy the graphs (``name -> (onnx path, io spec)``) and write the manifest.
    ``sections`` are further top-level manifest sections (e.g. ``visual``: the world model's sizes)."""
    out = Path(out)
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
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return out


def _tolist(x: Any) -> Any:
    return np.asarray(x).tolist()


def load_bundle(path: str | Path, joint_names: Sequence[str] | None = None,
                image_size: tuple[int, int] | None = None, check_graphs: bool = True) -> Bundle:
    """Verify a bundle and return it (sessions are built on demand by :meth:`Bundle.session`)."""
    path = Path(path)
    mpath = path / "manifest.yaml"
    if not mpath.is_file():
        raise BundleError(f"check 'manifest': {mpath} not found (is {path} a wm_control bundle?)")
    try:
        manifest = yaml.safe_load(mpath.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"check 'manifest': {mpath} is not valid YAML: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"check 'format': expected format {FORMAT!r}, got "
                          f"{manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__!r}")
    for key in ("robot", "graphs", "files"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"check 'manifest': section {key!r} missing or not a mapping")
    files = manifest["files"]
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"check 'files': {name} is listed in the manifest but missing")
        got = sha256_file(f)
        if got != digest:
            raise BundleError(f"check 'sha256': {name} has sha256 {got[:16]}..., the manifest says "
                              f"{str(digest)[:16]}... (corrupt or modified file)")
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
    return Bundle(path, manifest)


def _check_graph_io(path: Path, manifest: dict[str, Any]) -> None:
    import onnx

    for name, g in manifest["graphs"].items():
        try:
            model = onnx.load(str(path / g["file"]), load_external_data=False)
            onnx.checker.check_model(model)
        except Exception as exc:
            raise BundleError(f"check 'onnx': graph {name!r} ({g['file']}) is not a valid ONNX model: {exc}") from None

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
