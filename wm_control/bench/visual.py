"""``wm-control bench visual``: the world model's runtime as the ``world_model`` node runs it, on the
bundle's ONNX graphs: per camera frame, encode + adapter + one student step against the KV cache
(:meth:`StreamingWorldModel.observe`), and the operator's preview (``preview_steps`` more steps on a
copy of the cache + decoding them). Frames are real camera frames when a folder of camera bags is
given, else random images (the timings do not depend on the content)."""

from __future__ import annotations

import time

import numpy as np

from wm_control.report import machine, stats, summary_line


def bench_visual(bundle: str = "bundles/visual", frames: int = 1000, preview_steps: int = 8, device: str = "auto",
                 data: str | None = None) -> dict:
    from wm_control.world.bundle import load_bundle
    from wm_control.world.stream import StreamingWorldModel

    b = load_bundle(bundle)
    wm = StreamingWorldModel(b, device=device, warmup=20)
    H, W = wm.size
    rng = np.random.default_rng(0)
    if data:
        from wm_control.train.visual import VisualConfig, load_video

        cfg = VisualConfig(image_size=W, frame_rate=wm.frame_rate)
        eps, _ = load_video(data, cfg)
        imgs = np.concatenate([e.frames for e in eps])[:frames]
        cmds = np.concatenate([e.command for e in eps])[:frames]
    else:
        imgs = rng.integers(0, 255, (frames, H, W, 3), dtype=np.uint8)
        cmds = rng.normal(0, 0.5, (frames, wm.n_joints)).astype(np.float32)
    obs_ms, prev_ms = np.empty(len(imgs)), np.empty(len(imgs))
    for i, (f, c) in enumerate(zip(imgs, cmds)):
        t0 = time.perf_counter()
        wm.observe(f, c)
        t1 = time.perf_counter()
        wm.decode(wm.preview(c, preview_steps))
        t2 = time.perf_counter()
        obs_ms[i], prev_ms[i] = 1e3 * (t1 - t0), 1e3 * (t2 - t1)
    out = {"benchmark": "visual", "bundle": bundle, "providers": wm.providers, "frames": len(imgs),
           "image": [H, W], "window": wm.window, "preview_steps": preview_steps,
           "observe_ms": stats(obs_ms), "preview_ms": stats(prev_ms),
           "frames_per_s_streaming": float(1e3 / obs_ms.mean()),
           "frames_per_s_with_preview": float(1e3 / (obs_ms + prev_ms).mean()),
           "aim_frames_per_s": 100.0, "machine": machine()}
    summary_line(f"world model ({wm.providers[0]}): observe (encode + adapter + cached step) p50 "
                 f"{out['observe_ms']['p50']:.3f} ms / p99 {out['observe_ms']['p99']:.3f} ms = "
                 f"{out['frames_per_s_streaming']:.0f} frames/s; with a {preview_steps}-frame preview "
                 f"{out['frames_per_s_with_preview']:.0f} frames/s")
    return out
