"""``wm-control bench ensemble``: one ONNX Runtime call of the whole ensemble on a planner-sized batch
(every member x ``candidates`` states and action windows), as the planner will query it."""

from __future__ import annotations

import time

import numpy as np

from wm_control.report import machine, stats, summary_line


def bench_ensemble(bundle: str, candidates: int = 256, calls: int = 3000, device: str = "auto",
                   threads: int = 1) -> dict:
    from wm_control.world.bundle import Session, load_bundle

    b = load_bundle(bundle)
    spec = b.graph("ensemble")
    M = int(spec["members"])
    _, _, H, ds = spec["inputs"]["state_window"]["shape"]
    da = spec["inputs"]["action_window"]["shape"][-1]
    sess = Session(b.path / spec["file"], spec, device=device, threads=threads, warmup=50)
    rng = np.random.default_rng(0)
    feed = {"state_window": rng.normal(size=(M, candidates, H, ds)).astype(np.float32),
            "action_window": rng.normal(size=(M, candidates, H, da)).astype(np.float32),
            "goal": rng.normal(size=(M, candidates, 3)).astype(np.float32)}
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        sess.sess.run(None, feed)
        times[i] = time.perf_counter() - t0
    out = {"benchmark": "ensemble", "bundle": bundle, "members": M, "candidates": candidates, "history": H,
           "providers": sess.providers, "intra_op_threads": threads, "calls": calls,
           "latency_ms": stats(1e3 * times), "aim_ms": 1.0, "machine": machine()}
    out["meets_aim_p50"] = out["latency_ms"]["p50"] < 1.0
    summary_line(f"ensemble {M} members x {candidates} candidates: p50 {out['latency_ms']['p50']:.3f} ms, "
                 f"p99 {out['latency_ms']['p99']:.3f} ms ({sess.providers[0]}, {threads} thread)")
    return out
