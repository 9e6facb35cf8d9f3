"""``wm-control eval``: closed-loop evaluation of policies on ``sim_robot`` through the real graph.

For each policy (a bundle driven by the ``policy`` node; ``planner:BUNDLE``: the ``policy`` node with
``use_plan`` following the ``planner`` node, both on BUNDLE; or ``expert``: the scripted controller)
the graph runs in lock-step with sim time (so a slow CPU changes no result) for N episodes of
``episode_s`` seconds; ``sim_robot`` reports each episode on ``/sim_robot/episode``. Episode k
starts from the same arm state and goal for every policy (same simulator seed), so the comparison
is paired. Results: one JSON object and a PNG next to it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wm_control.eval.imagined_vs_real import ImaginedVsReal, summary_text
from wm_control.eval.push import wilson
from wm_control.report import write_json
from wm_control.ros import qos, topics
from wm_control.ros.harness import GraphRun
from wm_control.sim.robots import DEFAULT_ROBOT, episode_reset, success_radius


def expert_params(spec: str) -> dict[str, float]:
    """``expert`` or ``expert:noise=0.3,gain=0.1`` -> the scripted controller's parameters (the
    behaviour policies of the collected logs)."""
    if spec == "expert":
        return {}
    out: dict[str, float] = {}
    for item in spec.split(":", 1)[1].split(","):
        k, _, v = item.partition("=")
        if k.strip() not in ("noise", "gain", "seed") or not v:
            raise ValueError(f"bad expert spec {spec!r}: use expert:noise=N,gain=G[,seed=S]")
        out[k.strip()] = int(v) if k.strip() == "seed" else float(v)
    return out


def split_policies(text: str) -> list[str]:
    """A comma list of policy specs -> the specs; ``expert:noise=N,gain=G`` stays one spec (a ``key=value``
    item continues the expert spec before it)."""
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if out and out[-1].startswith("expert:") and "=" in item and ":" not in item and "/" not in item:
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def missing_bundle(spec: str) -> str | None:
    """The bundle folder a policy spec names when it has no manifest.yaml; None for an expert spec or a bundle."""
    if spec == "expert" or spec.startswith("expert:"):
        return None
    path = spec.split(":", 1)[1] if spec.startswith("planner:") else spec
    return None if (Path(path) / "manifest.yaml").exists() else path


def check_policy(spec: str, visual: str | None = None) -> None:
    """Refuse, before any graph starts, a bad expert spec, a spec that names no bundle folder, or a policy that
    sees the camera without its visual bundle (``visual``, or the one its bundle recorded)."""
    if spec == "expert" or spec.startswith("expert:"):
        expert_params(spec)
    elif (path := missing_bundle(spec)) is not None:
        raise ValueError(f"policy {spec!r}: {path} is not a bundle folder (no manifest.yaml); give a bundle, "
                         f"planner:BUNDLE, expert or expert:noise=N,gain=G")
    elif not spec.startswith("planner:"):
        visual_for(spec, visual)


def policy_label(policy: str) -> str:
    """A short name for a policy spec: the bundle folder's name, ``planner:NAME``, ``expert[:...]``."""
    if policy.startswith("planner:"):
        return "planner:" + Path(policy.split(":", 1)[1]).name
    return policy if policy.startswith("expert") else Path(policy).name


#: lock-step camera rate for a policy that sees the camera: a divisor of the 50 Hz control rate, so the frame
#: of every tick's instant is known (the policy waits for its latent) and results do not depend on speed
LOCKSTEP_CAMERA_RATE = 25.0


def _manifest(bundle: str | Path) -> dict:
    """A bundle folder's manifest.yaml, read (not verified: the nodes verify the bundle they load)."""
    return yaml.safe_load((Path(bundle) / "manifest.yaml").read_text()) or {}


def latent_input(bundle: str | Path) -> dict | None:
    """A bundle's ``graphs.policy.latent`` (the visual bundle whose latents its policy reads); None when its
    policy is blind to the camera."""
    from wm_control.control.features import needs_latent

    spec = (_manifest(bundle).get("graphs") or {}).get("policy") or {}
    return spec.get("latent") if needs_latent(str(spec.get("observation", ""))) else None


def visual_for(bundle: str | Path, visual: str | None = None) -> tuple[dict, Path] | None:
    """(latent spec, visual bundle folder) for a policy bundle that sees the camera: ``visual`` or the folder
    its bundle recorded at training; None for a policy blind to the camera."""
    li = latent_input(bundle)
    if li is None:
        return None
    path = Path(visual or li.get("bundle") or "")
    if not (path / "manifest.yaml").exists():
        raise ValueError(f"{bundle}: its policy reads the latents of visual bundle {li['bundle_id'][:12]}, recorded "
                         f"at {li.get('bundle') or '?'}, which is not a bundle here: pass --visual VISUAL_BUNDLE")
    return li, path


def plans_object_reward(policy: str) -> bool:
    """A ``planner:BUNDLE`` spec whose ensemble's reward head learnt the object's distance to the goal (then
    ``-expected_return / horizon`` is a distance, comparable with the simulator's ground truth)."""
    if not policy.startswith("planner:"):
        return False
    try:
        manifest = _manifest(policy.split(":", 1)[1])
    except (OSError, yaml.YAMLError):
        return False
    from wm_control.control.features import needs_goal_image

    if needs_goal_image(str(((manifest.get("graphs") or {}).get("policy") or {}).get("observation", ""))):
        return False  # it plans to a goal image: its return is the energy to that image's latent, not a distance
    return ((manifest.get("training") or {}).get("ensemble") or {}).get("config", {}).get("reward") == "object"


def _graph_yaml(policy: str, robot: str, episode_s: float, seed: int, device: str, render: bool,
                planner_params: dict[str, Any] | None = None, visual: str | None = None) -> dict:
    graph: dict[str, Any] = {
        "/**": {"ros__parameters": {"use_sim_time": True, "launch": {"required": True}}},
        "sim_robot": {"ros__parameters": {
            "use_sim_time": False, "robot": robot, "mode": "lockstep", "control_rate": 50.0,
            "episode_s": episode_s, "seed": seed, "render": render, "camera_rate": 10.0,
            "episode_reset": episode_reset(robot),  # as the robot's data were collected
            "image_width": 64, "image_height": 64, "lockstep_timeout": 10.0}},  # a starved controller: wait, not advance
    }
    if policy == "expert" or policy.startswith("expert:"):
        graph["scripted_controller"] = {"ros__parameters": {"robot": robot, "rate": 50.0, "max_input_age": 30.0,
                                                            **expert_params(policy)}}
    elif policy.startswith("planner:"):
        bundle = str(Path(policy.split(":", 1)[1]).resolve())
        graph["policy"] = {"ros__parameters": {"bundle": bundle, "device": device, "max_joint_state_age": 0.1,
                                               "track_frames": False, "use_plan": True}}
        graph["planner"] = {"ros__parameters": {"bundle": bundle, "device": device, **(planner_params or {})}}
        _camera_in_the_loop(graph, bundle, visual, device)
    else:
        graph["policy"] = {"ros__parameters": {"bundle": str(Path(policy).resolve()), "device": device,
                                               "max_joint_state_age": 0.1, "track_frames": False}}
        _camera_in_the_loop(graph, policy, visual, device)
    return graph


def _camera_in_the_loop(graph: dict, bundle: str, visual: str | None, device: str) -> None:
    """For a bundle whose policy sees the camera: sim camera -> camera_ingest -> world_model -> /wm/latent, at
    the lock-step camera rate; the policy node (and a planner over the latent) wait for the latent of each
    instant's frame."""
    seen = visual_for(bundle, visual)
    if seen is None:
        return
    li, vis = seen
    cam = yaml.safe_load((vis / "manifest.yaml").read_text())["camera"]
    w, h = int(cam["width"]), int(cam["height"])
    graph["sim_robot"]["ros__parameters"].update(render=True, camera_rate=LOCKSTEP_CAMERA_RATE,
                                                 image_width=w, image_height=h)
    graph["camera_ingest"] = {"ros__parameters": {"width": w, "height": h, "max_age": 0.5}}
    graph["world_model"] = {"ros__parameters": {"bundle": str(vis.resolve()), "bundle_id": li["bundle_id"],
                                                "device": device, "preview_steps": 0}}
    # the first frame's latent waits for world_model to start (seconds); later ones take milliseconds
    graph["policy"]["ros__parameters"].update(latent_period=1.0 / LOCKSTEP_CAMERA_RATE, latent_wait=8.0)
    if "planner" in graph:
        graph["planner"]["ros__parameters"].setdefault("latent_period", 1.0 / LOCKSTEP_CAMERA_RATE)


def run_episodes(policy: str, episodes: int, robot: str = DEFAULT_ROBOT, episode_s: float = 2.0, seed: int = 0,
                 device: str = "auto", render: bool = False, timeout_s: float | None = None,
                 planner_params: dict[str, Any] | None = None, backend: str | None = None,
                 visual: str | None = None) -> dict:
    """Run one policy for ``episodes`` episodes; per-episode results and aggregates.

    ``policy``: a bundle folder, ``planner:BUNDLE`` (policy node with ``use_plan`` + planner node;
    ``planner_params`` go to the planner node, e.g. ``{"lam": 1.0, "samples": 128}``) or ``expert[:...]``."""
    results: list[dict] = []
    bar: list[Any] = [None]

    def on_episode(m: Any) -> None:
        kv = {v.key: v.value for v in m.values}
        results.append({"episode": int(kv["episode"]), "final_distance": float(kv["final_distance"]),
                        "success": kv["success"] == "True", "return": float(kv["return"])})
        if bar[0] is not None:
            bar[0].n = len(results)
            bar[0].refresh()

    graph = _graph_yaml(policy, robot, episode_s, seed, device, render, planner_params, visual)
    imagined = ImaginedVsReal(success_radius(robot)) if plans_object_reward(policy) else None
    with GraphRun(graph, "wm_eval", backend=backend) as run:
        run.node.create_subscription("diagnostic_msgs/msg/DiagnosticStatus", "/sim_robot/episode", on_episode,
                                     qos.QoSProfile("reliable", "volatile", 100))
        if imagined is not None:  # what the planner expected against what the simulator then did
            topics.GOAL.subscribe(run.node, imagined.on_goal)
            topics.PLAN.subscribe(run.node, imagined.on_plan)
            run.node.create_subscription(topics.GROUND_TRUTH_OBJECT.type, topics.GROUND_TRUTH_OBJECT.name,
                                         imagined.on_object, qos.QoSProfile("reliable", "volatile", 1000))
        run.start()
        t0 = time.monotonic()
        # a watchdog on progress, not on the whole run: lock-step runs as fast as the slowest node (a planner
        # over the camera takes ~5x an episode's sim time on 2 cores), and only a graph that stops finishing
        # episodes is stuck
        limit = timeout_s or (60 + episode_s * 30)
        bar[0] = _bar(episodes, f"eval {policy_label(policy)}")
        try:
            failure = None if run.wait_ready(60) else (run.failure or "graph did not start")
            seen, last = -1, time.monotonic()
            while failure is None and len(results) < episodes:
                if len(results) != seen:
                    seen, last = len(results), time.monotonic()
                left = limit - (time.monotonic() - last)
                if left <= 0 or (not run.spin(until=lambda: len(results) >= episodes or len(results) != seen,
                                              timeout=min(left, 5.0)) and run.failure):
                    failure = run.failure
                    if failure is None:
                        logs = "\n".join(f"  [{name}] " + "\n  ".join(lines)
                                         for name, lines in run.last_lines(6).items())
                        failure = (f"no episode finished in {limit:.0f} s ({len(results)}/{episodes} done); the "
                                   f"nodes' last lines:\n{logs}")
        finally:
            if bar[0] is not None:
                bar[0].close()
            counters = {k: v for k, v in run.diagnostics.get("policy", {}).items()
                        if k.startswith(("ticks.", "latent_fallback.", "plan_fallback.", "held_ticks", "dropped."))}
            planner = {k: v for k, v in run.diagnostics.get("planner", {}).items()
                       if k.startswith(("status.", "latent_fallback.", "dropped.", "plan."))}
    if failure:
        raise RuntimeError(f"eval of {policy}: {failure}")
    results = sorted(results, key=lambda r: r["episode"])[:episodes]
    d = np.array([r["final_distance"] for r in results])
    return {
        "policy": policy, "episodes": len(results), "success_rate": float(np.mean([r["success"] for r in results])),
        "success_95ci": list(wilson(sum(r["success"] for r in results), len(results))),
        "mean_return": float(np.mean([r["return"] for r in results])), "mean_final_distance": float(d.mean()),
        "median_final_distance": float(np.median(d)), "wall_s": round(time.monotonic() - t0, 1),
        **({"planner_params": dict(planner_params)} if planner_params and policy.startswith("planner:") else {}),
        **({"visual": graph["world_model"]["ros__parameters"]["bundle"]} if "world_model" in graph else {}),
        "policy_counters": counters,  # the policy node's last diagnostics: ticks by source, fallbacks, holds
        **({"planner_counters": planner} if "planner" in graph else {}),  # plans by status, latency, fallbacks
        **({"imagined_vs_real": iv} if (iv := imagined and imagined.summary(len(results))) else {}),
        "per_episode": results,
    }


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["lam=1", "samples=128"]`` -> ``{"lam": 1, "samples": 128}`` (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        v = yaml.safe_load(value) if value.strip() else ""
        if isinstance(v, str):  # YAML 1.1 reads 1e9 as a string: a number written so is still a number
            try:
                v = float(v)
            except ValueError:
                pass
        out[key.strip()] = v
    return out


def check_planner_params(params: dict[str, Any]) -> None:
    """Unknown planner node parameters fail here, before any graph starts."""
    import dataclasses

    from wm_control.ros.nodes.planner import PlannerNodeConfig

    known = {f.name for f in dataclasses.fields(PlannerNodeConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown planner parameter(s) {unknown}; known: {sorted(known)}")


def _bar(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, unit="ep")
    except ImportError:  # pragma: no cover
        return None


def evaluate(policies: list[str], episodes: int = 50, robot: str = DEFAULT_ROBOT, episode_s: float = 2.0,
             seed: int = 0, device: str = "auto", json_path: str | None = None,
             planner_params: dict[str, Any] | None = None, backend: str | None = None,
             visual: str | None = None) -> dict:
    """Each policy of ``policies`` over the graph (:func:`run_episodes`); ``visual``: the visual bundle for the
    policies that see the camera (default: the one each recorded)."""
    for p in policies:
        check_policy(p, visual)
    runs: list[dict] = []
    out: dict[str, Any] = {
        "evaluation": "closed_loop", "robot": robot, "episodes": episodes, "episode_s": episode_s, "seed": seed,
        "success_radius_m": success_radius(robot), "mode": "lockstep (sim time)",
        "episode_reset": episode_reset(robot), "policies": runs,
    }
    for p in policies:  # the JSON grows after each policy: a later failure keeps what finished
        runs.append(run_episodes(p, episodes, robot, episode_s, seed, device, planner_params=planner_params,
                                 backend=backend, visual=visual))
        if json_path:
            write_json(json_path, out)
    expert = next((r for r in runs if r["policy"] == "expert"), None)
    if expert is not None and expert["success_rate"] > 0:
        out["relative_to_expert"] = {r["policy"]: r["success_rate"] / expert["success_rate"] for r in runs}
    for r in runs:
        print(f"{policy_label(r['policy']):>12}: success {100 * r['success_rate']:5.1f}%  mean return "
              f"{r['mean_return']:8.3f}  mean final distance {r['mean_final_distance']:.4f} m  "
              f"({r['episodes']} episodes, {r['wall_s']:.0f} s){summary_text(r)}")
    if json_path:
        p = write_json(json_path, out)
        _plot(out, p.with_suffix(".png"))
        print(f"wrote {p} and {p.with_suffix('.png')}")
    return out


def _plot(out: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    runs = out["policies"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    names = [policy_label(r["policy"]) for r in runs]
    ax[0].bar(names, [100 * r["success_rate"] for r in runs], color="tab:blue")
    ax[0].set_ylabel("success rate (%)")
    ax[0].set_ylim(0, 105)
    ax[0].set_title(f"{out['robot']}: {out['episodes']} episodes of {out['episode_s']} s")
    for r, name in zip(runs, names):
        d = np.array([e["final_distance"] for e in r["per_episode"]])
        ax[1].hist(np.clip(d, 0, 0.2) * 100, bins=40, range=(0, 20), alpha=0.6, label=name)
    ax[1].axvline(100 * out["success_radius_m"], color="k", ls="--", lw=1, label="success radius")
    ax[1].set_xlabel("final distance to the goal (cm, clipped at 20)")
    ax[1].set_ylabel("episodes")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
