"""``wm-control demo``: the README's main job.

Starts the graph from a config (separate processes, on the dds backend over Cyclone DDS on loopback,
or on rclpy) with :class:`~wm_control.ros.harness.GraphRun`, watches it from the outside like any ROS
tool would (joint states, camera frames, goals, commands, latents, previews, /diagnostics), prints
progress, and at the end a summary of what the robot did; the same summary goes to JSON. Then the
closed-loop evaluation of the config's policy (and planner) against the expert.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from wm_control.cli.flags import config_path, parse
from wm_control.messages import convert as cv
from wm_control.ros import qos
from wm_control.ros.harness import GraphRun
from wm_control.sim.robots import DEFAULT_ROBOT
from wm_control.world.frames import image_msg_to_rgb


def _params(graph: dict, node: str) -> dict:
    return (graph.get(node) or {}).get("ros__parameters") or {}


def _usable(bundle: str) -> bool:
    """Is there a bundle here that a node would accept? One that fails verification (e.g. made before
    bundles had an id) is rebuilt rather than refused by the nodes later."""
    if not (Path(bundle) / "manifest.yaml").exists():
        return False
    from wm_control.world.bundle import BundleError, load_bundle

    try:
        load_bundle(bundle)
    except BundleError as exc:
        print(f"[demo] the bundle at {bundle} fails verification ({exc}): rebuilding it", flush=True)
        return False
    return True


def ensure_bundle(config: str, preset: str = "quick") -> None:
    """Train and export what the config's nodes load when it is not there yet: the visual world model
    for a world_model node, the BC policy (``bundles/bc``) and, for a planner, the RWM-U ensemble with
    that policy inside."""
    graph = yaml.safe_load(Path(config).read_text()) or {}
    visual = _params(graph, "world_model").get("bundle")
    if visual and not _usable(visual):
        from wm_control.train.visual import export_visual, train_visual, visual_preset

        print(f"[demo] no bundle at {visual}: training the visual world model (preset {preset}: JEPA encoder, "
              f"decoder, latent actions, teacher, student, adapter; about 12 minutes here)", flush=True)
        export_visual(train_visual(visual_preset(preset), f"data/{DEFAULT_ROBOT}_video", "runs/visual", resume=True), visual)
    wanted = {_params(graph, "policy").get("bundle"), _params(graph, "planner").get("bundle")} - {None, ""}
    missing = [b for b in wanted if not _usable(b)]
    if not missing:
        return
    from wm_control.train.bc import export_bc, train_bc
    from wm_control.train.presets import bc_preset

    planned = "planner" in graph
    bc_bundle = "bundles/bc" if planned else missing[0]
    if bc_bundle in missing or not _usable(bc_bundle):
        print(f"[demo] no bundle at {bc_bundle}: training the BC policy first (preset {preset}, about a minute)",
              flush=True)
        export_bc(train_bc(bc_preset(preset), f"data/{DEFAULT_ROBOT}_expert", "runs/bc"), bc_bundle)
    if planned:
        from wm_control.train.ensemble import ensemble_preset, export_ensemble, train_ensemble

        for b in missing:
            if b == bc_bundle:
                continue
            print(f"[demo] no bundle at {b}: training the RWM-U ensemble for the planner (preset {preset}, "
                  f"self-forcing, a few minutes)", flush=True)
            ckpt = train_ensemble(ensemble_preset(preset, regime="self"), f"data/{DEFAULT_ROBOT}_expert", "runs/ensemble_self")
            export_ensemble(ckpt, b, policy_bundle=bc_bundle)


def run_demo(config: str, duration: float, json_path: str | None, episodes: int = 50,
             preset: str = "quick", backend: str | None = None) -> int:
    """Train if needed, run the live graph for ``duration`` s, then the closed-loop evaluation."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    ensure_bundle(config, preset)
    code = run_graph(config, duration, json_path, backend)
    graph = yaml.safe_load(Path(config).read_text()) or {}
    bundle = _params(graph, "policy").get("bundle")
    if code == 0 and bundle and episodes > 0:
        from wm_control.eval.closed_loop import evaluate

        runs = [bundle] + ([f"planner:{bundle}"] if "planner" in graph else []) + ["expert"]
        print(f"[demo] closed-loop evaluation: {episodes} episodes each of {', '.join(runs)} "
              f"(lock-step, sim time)", flush=True)
        out = evaluate(runs, episodes=episodes, backend=backend,
                       json_path=str(Path(json_path).parent / "eval.json") if json_path else None)
        rel = out.get("relative_to_expert", {}).get(bundle)
        if rel is not None:
            print(f"[demo] the learned policy reaches {100 * rel:.0f}% of the expert's success rate")
    return code


def run_graph(config: str, duration: float, json_path: str | None, backend: str | None = None) -> int:
    """The graph from ``config`` for ``duration`` s, watched from outside; prints and saves a summary."""
    run = GraphRun(config, "wm_demo_monitor", backend=backend)
    node, diag = run.node, run.diagnostics
    seen = {"joint_states": 0, "images": 0, "commands": 0, "goals": 0, "bad_images": 0, "latents": 0, "previews": 0}
    first_q: list[np.ndarray] = []
    last_q: list[np.ndarray] = []
    path_len = [0.0]
    img_shape: list[tuple] = []
    t_img: list[float] = []

    def on_js(m) -> None:
        q = np.asarray(m.position, dtype=float)
        if last_q and last_q[-1].shape == q.shape:
            path_len[0] += float(np.abs(q - last_q[-1]).sum())
        if not first_q:
            first_q.append(q)
        last_q[:] = [q]
        seen["joint_states"] += 1

    def on_img(m) -> None:
        try:
            rgb = image_msg_to_rgb(m)
            img_shape[:] = [rgb.shape]
            seen["images"] += 1
            t_img.append(time.monotonic())
        except cv.ConversionError:
            seen["bad_images"] += 1

    def count(key: str):
        return lambda m: seen.__setitem__(key, seen[key] + 1)

    code = 0
    with run:
        node.create_subscription("sensor_msgs/msg/JointState", "/joint_states", on_js, qos.SENSOR_DATA)
        node.create_subscription("sensor_msgs/msg/Image", "/camera/image_raw", on_img, qos.SENSOR_DATA)
        node.create_subscription("std_msgs/msg/Float64MultiArray", "/forward_position_controller/commands",
                                 count("commands"), qos.DEFAULT)
        node.create_subscription("geometry_msgs/msg/PointStamped", "/goal", count("goals"), qos.LATCHED)
        node.create_subscription("wm_control/msg/LatentState", "/wm/latent", count("latents"), qos.DEFAULT)
        node.create_subscription("sensor_msgs/msg/Image", "/wm/preview", count("previews"), qos.SENSOR_DATA)
        print(f"[demo] starting graph from {config}: {', '.join(run.names)}", flush=True)
        run.start()
        if not run.wait_ready(60):
            print(f"[demo] graph failed to start: {run.failure}", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        end, next_print = t0 + duration, t0 + 5
        while time.monotonic() < end:
            if not run.spin(timeout=min(end, next_print) - time.monotonic()) and run.failure:
                print(f"[demo] {run.failure}", file=sys.stderr)
                code = 1
                break
            if time.monotonic() >= next_print:
                sim = diag.get("sim_robot", {})
                print(f"[demo] t={time.monotonic() - t0:4.0f}s  joint_states {seen['joint_states']}, "
                      f"frames {seen['images']}, commands {seen['commands']}, episodes "
                      f"{sim.get('episodes', 0)} ({sim.get('successes', 0)} reached the goal)", flush=True)
                next_print += 5
        elapsed = time.monotonic() - t0
        node.spin(timeout=1.2)  # one more round of diagnostics
    sim = diag.get("sim_robot", {})
    ctl = diag.get("policy") or diag.get("scripted_controller", {})
    fps = (len(t_img) - 1) / (t_img[-1] - t_img[0]) if len(t_img) > 1 else 0.0
    summary = {
        "config": config, "duration_s": round(elapsed, 2), "nodes": run.names,
        "received": seen, "camera_fps": round(fps, 2), "image_shape": list(img_shape[0]) if img_shape else None,
        "joint_path_length_rad": round(path_len[0], 3),
        "joint_motion_rad": (np.abs(last_q[0] - first_q[0]).round(3).tolist() if first_q else None),
        "episodes": int(sim.get("episodes", 0)), "successes": int(sim.get("successes", 0)),
        "last_final_distance_m": float(sim["last_final_distance"]) if "last_final_distance" in sim else None,
        "sim_robot": {k: v for k, v in sim.items() if not k.startswith("_")},
        "controller": {k: v for k, v in ctl.items() if not k.startswith("_")},
        "node_failure": run.failure,
    }
    if "planner" in diag:
        summary["planner"] = {k: v for k, v in diag["planner"].items() if not k.startswith("_")}
        ticks = {k.split(".", 1)[1]: int(v) for k, v in ctl.items() if k.startswith("ticks.")}
        if ticks:
            summary["followed_plan_fraction"] = ticks.get("plan", 0) / max(1, sum(ticks.values()))
    if "world_model" in diag:
        summary["world_model"] = {k: v for k, v in diag["world_model"].items() if not k.startswith("_")}
    if summary["episodes"]:
        summary["success_rate"] = summary["successes"] / summary["episodes"]
    print(f"[demo] {summary['duration_s']:.0f} s of the graph: {seen['joint_states']} joint states, "
          f"{seen['images']} camera frames {summary['image_shape']} at {fps:.1f} fps, {seen['commands']} commands; "
          f"the arm moved {summary['joint_path_length_rad']:.1f} rad in total; "
          f"{summary['successes']}/{summary['episodes']} episodes reached the goal (within 2 cm).")
    if "followed_plan_fraction" in summary:
        pl = summary["planner"]
        print(f"[demo] planner: {pl.get('plans.rate_hz', '?')} plans/s, plan latency p50 "
              f"{pl.get('plan.p50_ms', '?')} ms; the policy node followed the plan on "
              f"{100 * summary['followed_plan_fraction']:.0f}% of its ticks")
    if "world_model" in summary:
        wm = summary["world_model"]
        print(f"[demo] world model: {seen['latents']} latents on /wm/latent ({wm.get('frame.rate_hz', '?')} frames/s, "
              f"encode + student step p50 {wm.get('latency.p50_ms', '?')} ms), {seen['previews']} previews of the "
              f"next frames ({wm.get('preview.p50_ms', '?')} ms each); surprise p50 {wm.get('surprise.p50', '?')}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(summary, indent=2))
        print(f"[demo] summary written to {json_path}")
    if seen["joint_states"] == 0 or seen["commands"] == 0:
        print("[demo] the graph produced no joint states or no commands: something is wrong", file=sys.stderr)
        code = code or 1
    return code


@dataclass
class DemoOptions:
    """The main job: the stack on the simulated robot (trained first if its bundles are missing), a
    live run with a summary, then the closed-loop evaluation."""

    config: str = "demo.yaml"
    """The graph: a path, or the name of a file in config/."""
    duration: float = 20.0
    """Seconds of the live graph."""
    episodes: int = 50
    """Closed-loop evaluation episodes (0: none)."""
    preset: Literal["debug", "quick", "full"] = "quick"
    """Training preset when a bundle has to be trained first."""
    json: str = "runs/demo/summary.json"
    """The summary (the evaluation writes eval.json beside it)."""


def cmd_demo(argv: list[str]) -> int:
    o, _ = parse("wm-control demo", argv, DemoOptions)
    return run_demo(config_path(o.config), o.duration, o.json, episodes=o.episodes, preset=o.preset)
