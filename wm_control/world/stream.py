"""The visual world model at run time, on ONNX Runtime, one frame at a time (no ROS here).

:class:`StreamingWorldModel` holds the student's KV cache between frames. For each camera frame
(:meth:`observe`): encode it, turn the joint command in effect over the next frame into a latent
action (the bundle's action adapter, from the previous and current latents and the command), and
run one student step, which writes this frame into the cache and predicts the next latent.
:meth:`preview` rolls ``k`` further frames out on copies of the cache (the cache is an input and an
output of the graph, so the committed one is untouched) under a held command, and :meth:`decode`
turns latents into pictures. :meth:`reset` empties the cache (a gap in the stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_control.world.bundle import Bundle, BundleError

EMPTY_AGE = 1.0e4
RUNTIME_GRAPHS = ("encoder", "student_step", "action_adapter", "decoder")


@dataclass
class Prediction:
    latent: np.ndarray  # (Dz,) the observed frame's latent
    next_latent: np.ndarray  # (Dz,) the student's prediction of the next frame
    reset: bool  # the cache was empty before this frame


def _require_visual(bundle: Bundle, graphs: tuple[str, ...]) -> None:
    missing = [g for g in graphs if g not in bundle.manifest.get("graphs", {})]
    if missing or "visual" not in bundle.manifest:
        raise BundleError(f"bundle {bundle.path} is not a visual world model bundle (missing "
                          f"{missing or ['the visual section']}); train one with `wm-control train visual --bundle`")


class FrameEncoder:
    """A visual bundle's encoder: a camera frame at the model's resolution (uint8 H x W x 3, as camera_ingest
    hands it to the world_model node) -> its normalised latent, the one ``/wm/latent`` carries."""

    def __init__(self, bundle: Bundle, device: str = "auto", warmup: int = 5):
        _require_visual(bundle, ("encoder",))
        self.bundle = bundle
        self.spec = bundle.manifest["visual"]
        self.session = bundle.session("encoder", device, warmup=warmup)
        cam = bundle.manifest.get("camera") or {}
        self.size = (int(cam["height"]), int(cam["width"]))
        self.latent_dim = int(self.spec["latent_dim"])
        self.frame_rate = float(self.spec["frame_rate"])

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (Dz,) float32."""
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {self.size[0]}x{self.size[1]}x3 (the bundle's camera), "
                             f"got {frame.dtype} {frame.shape}")
        return self.session.run(frame=frame[None])["latent"][0]

    def encode_all(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, Dz) float32, one frame at a time as the node encodes them."""
        out = np.empty((len(frames), self.latent_dim), np.float32)
        for i, f in enumerate(frames):
            out[i] = self(f)
        return out


class StreamingWorldModel:
    def __init__(self, bundle: Bundle, device: str = "auto", warmup: int = 5):
        _require_visual(bundle, RUNTIME_GRAPHS)
        self.bundle = bundle
        self.spec = bundle.manifest["visual"]
        self.s = {g: bundle.session(g, device, warmup=warmup) for g in RUNTIME_GRAPHS}
        self.encoder = FrameEncoder(bundle, device, warmup)
        st = bundle.graph("student_step")
        self.window = int(st["window"])
        self.cache_shape = tuple(st["inputs"]["k_cache"]["shape"])
        self.size = self.encoder.size
        self.latent_dim = self.encoder.latent_dim
        self.frame_rate = self.encoder.frame_rate
        self.n_joints = len(bundle.joint_names)
        self.reset()

    @property
    def providers(self) -> list[str]:
        return self.s["student_step"].providers

    def reset(self) -> None:
        self.k = np.zeros(self.cache_shape, np.float32)
        self.v = np.zeros(self.cache_shape, np.float32)
        self.age = np.full((1, self.window), EMPTY_AGE, np.float32)
        self.t = 0
        self.z_prev: np.ndarray | None = None

    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self.encoder(frame)

    def action(self, z_prev: np.ndarray, z: np.ndarray, command: np.ndarray) -> np.ndarray:
        return self.s["action_adapter"].run(latent_prev=z_prev[None].astype(np.float32),
                                            latent=z[None].astype(np.float32),
                                            command=np.asarray(command, np.float32).reshape(1, -1))["action"][0]

    def _step(self, z, a, k, v, age, t):
        out = self.s["student_step"].run(latent=z[None].astype(np.float32), action=a[None].astype(np.float32),
                                         k_cache=k, v_cache=v, key_age=age,
                                         write_pos=np.array([t % self.window], np.int64))
        return out["next_latent"][0], out["k_cache_out"], out["v_cache_out"], out["key_age_out"]

    def observe(self, frame: np.ndarray | None, command: np.ndarray, latent: np.ndarray | None = None) -> Prediction:
        """One camera frame (or its latent) and the command in effect until the next frame."""
        z = self.encode(frame) if latent is None else np.asarray(latent, np.float32)
        if np.asarray(command).shape != (self.n_joints,):
            raise ValueError(f"command must have {self.n_joints} joints ({self.bundle.joint_names})")
        fresh = self.t == 0
        a = self.action(z if self.z_prev is None else self.z_prev, z, command)
        nxt, self.k, self.v, self.age = self._step(z, a, self.k, self.v, self.age, self.t)
        self.t += 1
        self.z_prev = z
        self.z_last, self.z_next = z, nxt
        return Prediction(z, nxt, fresh)

    def preview(self, command: np.ndarray, steps: int) -> np.ndarray:
        """Latents of the next ``steps`` frames (the first is :meth:`observe`'s prediction) under a held
        command; the committed cache is left as it is. (steps, Dz)"""
        if self.t == 0:
            raise RuntimeError("preview before any frame was observed")
        out = [self.z_next]
        k, v, age, t = self.k, self.v, self.age, self.t
        z_prev, z = self.z_last, self.z_next
        for _ in range(steps - 1):
            a = self.action(z_prev, z, command)
            nxt, k, v, age = self._step(z, a, k, v, age, t)
            t += 1
            z_prev, z = z, nxt
            out.append(nxt)
        return np.stack(out)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """(K, Dz) -> (K, H, W, 3) uint8."""
        return self.s["decoder"].run(latent=np.asarray(latents, np.float32).reshape(-1, self.latent_dim))["frame"]


def strip(frames: np.ndarray) -> np.ndarray:
    """(K, H, W, 3) -> one (H, K*W, 3) image, left to right in time."""
    return np.ascontiguousarray(np.concatenate(list(frames), axis=1))
