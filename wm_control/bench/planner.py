"""``wm-control bench planner``: how fast the planner plans, alone and in the running graph, as JSON.

* ``latency_ms``: wall time of consecutive warm-started plans (``members`` x ``samples`` x ``horizon``,
  ``iterations``) from a state in the data's range, for 1 and 2 ONNX Runtime intra-op threads (the
  faster is used below); ``ensemble_call_ms``: one ONNX call of all members x ``samples``, the unit
  of work (a plan makes ``horizon`` of them, plus two single-candidate rollouts);
* ``graph``: ``sim_robot`` (real time, joint states at 100 Hz), the ``policy`` node at the control rate
  with ``use_plan`` and the ``planner`` node, on the dds backend (or rclpy), for ``duration`` s: the
  plans the planner achieved per second and its latency there, the policy's command rate, the fraction
  of its ticks that followed the plan and why the others did not (from ``/diagnostics``), CPU per node.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.bench.loop import measure_window
from wm_control.ros import qos
from wm_control.ros.harness import GraphRun


def _pct(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def plan_latency(bundle: str, samples: int = 256, horizon: int = 16, iterations: int = 1, threads: int = 1,
                 device: str = "auto", plans: int = 200) -> dict[str, Any]:
    """Latency of ``plans`` consecutive warm-started plans (ms) and of one ensemble call."""
    from wm_control.control.planner import Planner, PlannerConfig
    from wm_control.world.bundle import load_bundle

    b = load_bundle(bundle)
    p = Planner(b, PlannerConfig(samples=samples, horizon=horizon, iterations=iterations, threads=threads,
                                 device=device))
    mean = np.asarray((b.manifest.get("normalizers", {}).get("ensemble_state") or {}).get("mean")
                      or np.zeros(p.state_dim), dtype=np.float64)
    states = np.repeat(mean[None], p.history, 0)
    states[:, p.n: 2 * p.n] = 0.0  # at rest (a visual latent stays at its data mean)
    q = np.clip(states[-1, : p.n], p.lo, p.hi)
    states[:, : p.n] = q
    actions = np.repeat(q[None], p.history - 1, 0)
    # a point, or for a bundle that plans to a goal image a latent off the mean by one data spread
    goal = mean[2 * p.n:] + p.latent_std if p.goal_image else np.array([0.1, -0.1, 0.01])
    for i in range(10):  # warm: the node plans warm-started
        p.plan(states, actions, goal, stamp=i * p.dt)
    ms = np.empty(plans)
    for i in range(plans):
        t0 = time.perf_counter()
        p.plan(states, actions, goal, stamp=(10 + i) * p.dt)
        ms[i] = 1e3 * (time.perf_counter() - t0)
    sess = p.ensemble.sess
    M, H, ds, n = p.members, p.history, p.state_dim, p.n
    feed = {"state_window": np.zeros((M, samples, H, ds), np.float32),
            "action_window": np.zeros((M, samples, H, n), np.float32), "goal": np.zeros((M, samples, 3), np.float32)}
    call = np.empty(300)
    for i in range(300):
        t0 = time.perf_counter()
        sess.run(None, feed)
        call[i] = 1e3 * (time.perf_counter() - t0)
    return {"threads": threads, "providers": p.providers, "members": M, "latency_ms": _pct(ms),
            "ensemble_call_ms": _pct(call)}


def graph_run(bundle: str, duration: float = 10.0, warmup: float = 4.0, device: str = "auto",
              planner_params: dict[str, Any] | None = None, backend: str | None = None) -> dict[str, Any]:
    """sim_robot (real time) + policy (use_plan) + planner for ``duration`` s; rates from /diagnostics. A bundle
    whose policy (and ensemble) sees the camera gets the camera chain too: the simulated robot it was trained
    on, rendering at 25 Hz, camera_ingest and world_model publishing /wm/latent."""
    from wm_control.eval.closed_loop import visual_for
    from wm_control.sim.robots import ROBOTS
    from wm_control.world.bundle import load_bundle

    path = str(Path(bundle).resolve())
    sim: dict[str, Any] = {"mode": "realtime", "control_rate": 50.0, "render": False, "episode_s": 4.0}
    graph = {
        "/**": {"ros__parameters": {"use_sim_time": False, "launch": {"required": True}}},
        "sim_robot": {"ros__parameters": sim},
        "policy": {"ros__parameters": {"bundle": path, "device": device, "use_plan": True, "track_frames": False}},
        "planner": {"ros__parameters": {"bundle": path, "device": device, **(planner_params or {})}},
    }
    seen = visual_for(bundle)
    if seen is not None:
        li, vis = seen
        vb = load_bundle(vis, expect_id=li["bundle_id"])
        cam = vb.manifest.get("camera") or {"width": 64, "height": 64}
        robot = load_bundle(bundle).manifest["robot"].get("name")
        sim.update(render=True, camera_rate=25.0, image_width=int(cam["width"]), image_height=int(cam["height"]),
                   **({"robot": robot} if robot in ROBOTS else {}))
        graph["camera_ingest"] = {"ros__parameters": {"width": int(cam["width"]), "height": int(cam["height"]),
                                                      "max_age": 0.1}}
        graph["world_model"] = {"ros__parameters": {"bundle": str(vb.path.resolve()), "bundle_id": vb.id,
                                                    "device": device, "preview_steps": 0}}
    plans: list[float] = []
    cmds: list[float] = []
    with GraphRun(graph, "wm_bench_planner", backend=backend) as run:
        run.node.create_subscription("wm_control/msg/Plan", "/wm/plan", lambda m: plans.append(time.monotonic()),
                                     qos.QoSProfile(depth=100))
        run.node.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                                     lambda m: cmds.append(time.monotonic()), qos.QoSProfile(depth=100))
        run.start()
        run.wait_ready(60, raise_failure=True)
        run.spin(timeout=warmup, raise_failure=True)
        run.spin(timeout=1.1, raise_failure=True)  # a fresh /diagnostics for the counters at the start
        diag = run.diagnostics
        pol0 = dict(diag.get("policy", {}))
        plans.clear()
        cmds.clear()
        wall, cpu = measure_window(run, duration)
        n_plans, n_cmds = len(plans), len(cmds)
        run.spin(timeout=1.1, raise_failure=True)  # the diagnostics of the whole window
    pol, pl = diag.get("policy", {}), diag.get("planner", {})

    def delta(key: str) -> int:
        return int(pol.get(key, 0)) - int(pol0.get(key, 0))

    ticks = {k.split(".", 1)[1]: delta(k) for k in pol if k.startswith("ticks.")}
    total = sum(ticks.values())
    fallbacks = {k.split(".", 1)[1]: delta(k) for k in pol if k.startswith("plan_fallback.")}
    return {
        "duration_s": round(wall, 2),
        "planner": {
            "plan_rate_hz": n_plans / wall, "target_hz": float((planner_params or {}).get("rate", 25.0)),
            "plan_latency_ms": {"p50": float(pl.get("plan.p50_ms", "nan")), "p99": float(pl.get("plan.p99_ms", "nan"))},
            "status_counts": {k.split(".", 1)[1]: int(v) for k, v in pl.items() if k.startswith("status.")},
            "threads": pl.get("threads"), "providers": pl.get("providers"),
            **({"camera_in_the_loop": True,
                "latent_fallbacks": {k: int(float(v)) for k, v in pl.items() if k.startswith("latent_fallback.")}}
               if seen is not None else {}),
        },
        "policy": {
            "command_rate_hz": n_cmds / wall, "ticks": ticks,
            "followed_plan_fraction": ticks.get("plan", 0) / total if total else 0.0,
            "fallbacks": {k: v for k, v in fallbacks.items() if v}, "status": pol.get("_msg", ""),
        },
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }


def bench_planner(bundle: str, samples: int = 256, horizon: int = 16, iterations: int = 1, device: str = "auto",
                  duration: float = 10.0, plans: int = 200, graph: bool = True,
                  backend: str | None = None) -> dict[str, Any]:
    by_threads = {f"threads_{t}": plan_latency(bundle, samples, horizon, iterations, t, device, plans) for t in (1, 2)}
    best = min(by_threads.values(), key=lambda r: r["latency_ms"]["p50"])
    out: dict[str, Any] = {
        "benchmark": "planner", "bundle": str(bundle), "members": best["members"], "samples": samples,
        "horizon": horizon, "iterations": iterations, "providers": best["providers"],
        "threads": best["threads"], "latency_ms": best["latency_ms"], "ensemble_call_ms": best["ensemble_call_ms"],
        "by_threads": {k: {"latency_ms": v["latency_ms"], "ensemble_call_ms": v["ensemble_call_ms"]}
                       for k, v in by_threads.items()},
        "aim_ms": 10.0, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                    "load_average_1min": os.getloadavg()[0]},
    }
    out["meets_aim_p50"] = out["latency_ms"]["p50"] < out["aim_ms"]
    for k, v in by_threads.items():
        print(f"plan ({out['members']} members x {samples} samples x horizon {horizon}), {k.replace('_', ' ')}: "
              f"p50 {v['latency_ms']['p50']:.2f} ms, p99 {v['latency_ms']['p99']:.2f} ms, mean "
              f"{v['latency_ms']['mean']:.2f} ms (one ensemble call p50 {v['ensemble_call_ms']['p50']:.3f} ms)")
    if graph:
        g = out["graph"] = graph_run(bundle, duration=duration, device=device, backend=backend,
                                     planner_params={"threads": best["threads"], "samples": samples,
                                                     "horizon": horizon, "iterations": iterations})
        print(f"graph ({g['duration_s']:.0f} s, real time): planner {g['planner']['plan_rate_hz']:.1f} plans/s "
              f"(latency p50 {g['planner']['plan_latency_ms']['p50']:.1f} ms, p99 "
              f"{g['planner']['plan_latency_ms']['p99']:.1f} ms), policy {g['policy']['command_rate_hz']:.1f} "
              f"commands/s, {100 * g['policy']['followed_plan_fraction']:.0f}% of ticks followed the plan; "
              f"CPU {g['cpu_percent']}")
    return out
