"""``wm-control bench loop``: the control loop under load, as JSON.

The real graph runs in real time: ``sim_robot`` (the bundle's robot) rendering 96x96 at 30 Hz,
``camera_ingest`` making model-resolution frames, the ``policy`` node at 50 Hz with a bundle and, for a
policy that sees the camera (``train bc --visual``), ``world_model`` with its visual bundle publishing
``/wm/latent``. Figures:

* ``camera_to_command_ms``: capture stamp of a frame -> publish of the first command that used it
  (the stack's reaction time), as the policy node measures it: for a camera policy, the frame whose
  latent the command used (capture -> camera_ingest -> encode -> policy -> command); for a policy blind
  to the camera, the newest frame at the first command after it arrived (which caused nothing);
* ``world_model_ms``: frame arrival -> latent published (encode + student step) and the preview, as the
  world_model node measures them; ``latent_age_at_command_ms``: the age of the latent each command used;
* ``frame_age_at_command_ms``: the age of the newest frame at every command (bounded below by the
  camera and control periods: a 30 Hz camera read by a 50 Hz loop);
* ``frame_pipeline_ms``: capture -> the model-resolution frame arriving at a subscriber (transport,
  decode, resize, transport);
* ``control``: achieved rate and period error of the policy node's loop; inference time;
* ``cpu_percent``: per node process, over the measurement window.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.harness import GraphRun


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_window(run: GraphRun, duration: float) -> tuple[float, dict[str, float]]:
    """Watch ``run`` for ``duration`` s (a failing graph raises): the wall seconds and each node's CPU
    percent over that window."""
    cpu0 = {name: _cpu_seconds(pid) for name, pid in run.pids.items()}
    t0 = time.monotonic()
    run.spin(timeout=duration, raise_failure=True)
    wall = time.monotonic() - t0
    return wall, {name: 100.0 * (_cpu_seconds(pid) - cpu0[name]) / wall for name, pid in run.pids.items()}


def bench_loop(bundle: str, duration: float = 20.0, warmup: float = 3.0, device: str = "auto",
               camera_rate: float = 30.0, image_size: int = 96, realtime_priority: int = 0,
               backend: str | None = None, visual: str | None = None, preview_steps: int = 8) -> dict:
    from wm_control.eval.closed_loop import visual_for
    from wm_control.world.bundle import load_bundle

    b = load_bundle(bundle)
    seen = visual_for(bundle, visual)
    vb = load_bundle(seen[1], expect_id=seen[0]["bundle_id"]) if seen else None
    cam = (vb or b).manifest.get("camera") or {"width": 64, "height": 64}
    sim = {"mode": "realtime", "camera_rate": camera_rate, "image_width": image_size, "image_height": image_size,
           "episode_s": 3.0}
    from wm_control.sim.robots import ROBOTS

    if b.manifest["robot"].get("name") in ROBOTS:
        sim["robot"] = b.manifest["robot"]["name"]
    graph = {
        "/**": {"ros__parameters": {"use_sim_time": False, "launch": {"required": True}}},
        "sim_robot": {"ros__parameters": sim},
        "camera_ingest": {"ros__parameters": {"width": int(cam["width"]), "height": int(cam["height"]),
                                              "max_age": 0.1}},
        "policy": {"ros__parameters": {"bundle": str(Path(bundle).resolve()), "device": device,
                                       "track_frames": True, "realtime_priority": realtime_priority}},
    }
    if vb is not None:
        graph["world_model"] = {"ros__parameters": {"bundle": str(vb.path.resolve()), "bundle_id": vb.id,
                                                    "device": device, "preview_steps": preview_steps}}
    pipeline: list[float] = []
    cmd_times: list[float] = []
    with GraphRun(graph, "wm_bench_loop", backend=backend) as run:
        run.node.create_subscription("sensor_msgs/msg/Image", "/wm/frame",
                                     lambda m: pipeline.append(time.time() - cv.stamp_sec(m.header.stamp)),
                                     qos.SENSOR_DATA)
        run.node.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                                     lambda m: cmd_times.append(time.monotonic()), qos.QoSProfile(depth=100))
        run.start()
        run.wait_ready(60, raise_failure=True)
        run.spin(timeout=warmup, raise_failure=True)
        pipeline.clear()
        cmd_times.clear()
        wall, cpu = measure_window(run, duration)
        run.spin(timeout=1.2, raise_failure=True)  # the diagnostics of the whole window
        diag = run.diagnostics
    pol = diag.get("policy", {})
    ing = diag.get("camera_ingest", {})
    wm = diag.get("world_model", {})

    def pct(key: str, d: dict = pol) -> dict[str, float]:
        return {"p50": float(d.get(f"{key}.p50_ms", "nan")), "p99": float(d.get(f"{key}.p99_ms", "nan"))}

    pl = 1e3 * np.asarray(pipeline)
    periods = np.diff(cmd_times)
    out = {
        "benchmark": "loop", "bundle": str(bundle), "duration_s": round(wall, 2), "device": device,
        "policy_scheduling": pol.get("scheduling", "normal"),
        "camera": {"rate_hz": camera_rate, "size": [image_size, image_size],
                   "model_frame": [int(cam["width"]), int(cam["height"])]},
        "camera_in_the_loop": vb is not None,
        "camera_to_command_measured_on": ("the frame whose latent the command used" if vb is not None else
                                          "the newest frame (the policy does not read the camera)"),
        "camera_to_command_ms": pct("camera_to_command"),
        "frame_age_at_command_ms": pct("frame_age_at_command"),
        **({"latent_age_at_command_ms": pct("latent_age_at_command"),
            "world_model_ms": {"latent": pct("latency", wm), "preview_p50": float(wm.get("preview.p50_ms", "nan")),
                               "frames_hz": float(wm.get("frame.rate_hz", "nan")), "preview_steps": preview_steps,
                               "visual_bundle": str(vb.path), "providers": wm.get("providers", "")},
            "latent_fallbacks": {k: int(float(v)) for k, v in pol.items() if k.startswith("latent_fallback.")}}
           if vb is not None else {}),
        "frame_pipeline_ms": {"p50": float(np.percentile(pl, 50)), "p99": float(np.percentile(pl, 99)),
                              "n": int(pl.size)} if pl.size else {},
        "control": {
            "target_hz": float(b.control_rate),
            "achieved_hz": float(pol.get("commands.rate_hz", "nan")),
            "period_error_ms": pct("period_error"),
            "received_at_monitor_hz": float(len(periods) / periods.sum()) if periods.size else 0.0,
            "inference_ms": {"p50": float(pol.get("inference_p50_ms", "nan")),
                             "p99": float(pol.get("inference_p99_ms", "nan"))},
            "providers": pol.get("providers", ""),
        },
        "camera_ingest": {k: v for k, v in ing.items() if k.startswith(("input", "output", "frame_age", "dropped"))},
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "aims": {"camera_to_command_p99_ms": 25.0 if vb is not None else 10.0, "control_period_error_p99_ms": 1.0},
    }
    c2c, per = out["camera_to_command_ms"]["p99"], out["control"]["period_error_ms"]["p99"]
    print(f"camera->command (reaction) p50 {out['camera_to_command_ms']['p50']:.2f} ms, p99 {c2c:.2f} ms; "
          f"frame pipeline p99 {out['frame_pipeline_ms'].get('p99', float('nan')):.2f} ms")
    print(f"control {out['control']['achieved_hz']:.2f} Hz, period error p99 {per:.3f} ms; inference p99 "
          f"{out['control']['inference_ms']['p99']:.3f} ms; CPU {out['cpu_percent']}")
    return out
