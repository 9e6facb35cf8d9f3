"""``wm-control eval push``: pushing an object that only the camera sees, from offline logs (JSON + PNG).

For each offline data set (a folder of camera bags of one quality, ``collect --quality``) and the visual
world model's encoder (``train visual`` on the task's video), three entries run in the true simulator from
the same starts and goals (episode ``i`` is the simulator reset with seed ``seed + i``: arm at rest, object
and goal drawn from their regions):

* **behaviour**: the scripted demonstrator at the data set's quality (it reads the simulator's object);
* **BC from pixels**: behaviour cloning on (cos q, sin q), the goal point's x, y and the visual latent of the
  latest camera frame (rendered at the camera rate, resized as camera_ingest does, encoded by the model's
  encoder): deployable, the object's position reaches it only through the image;
* **BC, true object** (privileged reference, not deployable): the same with the object's true x, y in place
  of the latent.

Success: the object's centre within 0.05 m of the goal at the episode's end; the JSON also has 0.10 m, the
median final distance and 95% Wilson intervals. The probe (``train visual``'s linear read-out of the object's
x, y from the latent on held-out frames) is copied from the model's metrics.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from wm_control.report import figure_path, progress, pyplot, save_figure, write_json

#: entry -> observation kind of its BC policy (:mod:`wm_control.control.features`)
BC_ENTRIES = {"BC from pixels": "joint_trig_goal_xy_latent", "BC, true object (privileged)": "joint_trig_goal_xy_object"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def score(distances: list[float], radius: float) -> dict[str, Any]:
    d = np.asarray(distances, float)
    k = int((d < radius).sum())
    return {"episodes": len(d), "success": k / len(d), "success_95ci": list(wilson(k, len(d))),
            "success_at_0.10": float((d < 0.10).mean()), "median_final_distance_m": float(np.median(d)),
            "mean_final_distance_m": float(d.mean()), "final_distance_m": [round(float(x), 4) for x in d]}


Actor = Callable[[Any, Any, "np.ndarray | None"], np.ndarray]  # (obs, arm, latent) -> joint target


def closed_loop(vm, actors: dict[str, tuple[Actor, Callable[[int], None]]], episodes: int, seed: int,
                episode_s: float, control_rate: float = 50.0, image_size: int = 96,
                radius: float = 0.05) -> dict[str, Any]:
    """Each actor (name -> (act, reset(episode))) for ``episodes`` episodes from the same starts and goals;
    frames at the model's camera rate, encoded by its encoder (only when an actor reads them)."""
    import torch

    from wm_control.sim import ArmConfig, SimArm
    from wm_control.world.frames import FrameSpec, prepare_frame
    from wm_control.world.visual import frames_to_input

    spec = FrameSpec(vm.cfg.image_size, vm.cfg.image_size)
    mean, std = torch.from_numpy(vm.mean), torch.from_numpy(vm.std)
    out: dict[str, Any] = {}
    n_steps = int(round(episode_s * control_rate))
    for name, (act, reset) in actors.items():
        arm = SimArm(ArmConfig(robot=vm.cfg.robot, image_width=image_size, image_height=image_size, seed=seed))
        arm.connect()
        dist, t0 = [], time.monotonic()
        bar = progress(episodes, f"eval push {name}", unit="ep")
        try:
            for i in range(episodes):
                obs = arm.reset(seed=seed + i)
                reset(i)
                next_cam, z = 0.0, None
                for k in range(n_steps):
                    t = k / control_rate
                    if t + 1e-9 >= next_cam:
                        f = prepare_frame(arm.render(), spec)  # what camera_ingest hands the world model
                        with torch.no_grad():
                            z = ((vm.encoder(frames_to_input(torch.from_numpy(f[None]))) - mean) / std)[0].numpy()
                        next_cam += 1.0 / vm.cfg.frame_rate
                    arm.set_position_target(act(obs, arm, z))
                    obs = arm.step(1.0 / control_rate)
                dist.append(float(arm.distance_to_goal()))
                bar.update(1)
        finally:
            bar.close()
            arm.disconnect()
        out[name] = {**score(dist, radius), "wall_s": round(time.monotonic() - t0, 1)}
        r = out[name]
        print(f"[eval push] {name:>30}: success {100 * r['success']:5.1f}% "
              f"[{100 * r['success_95ci'][0]:.0f}, {100 * r['success_95ci'][1]:.0f}]  within 0.10 m "
              f"{100 * r['success_at_0.10']:.0f}%  median final distance {r['median_final_distance_m']:.3f} m",
              file=sys.stderr)
    return out


def behaviour_actor(robot: str, quality: str, seed: int) -> tuple[Actor, Callable[[int], None]]:
    """The scripted demonstrator at a data quality; 'mixed' alternates its two behaviours by episode."""
    from wm_control.sim import make_policy
    from wm_control.sim.robots import DATA_QUALITY

    q = DATA_QUALITY[robot]
    names = ("expert", "low") if quality == "mixed" else (quality,)
    pols = [make_policy("expert", seed=seed, noise=q[n]["noise"], gain=q[n]["gain"]) for n in names]
    cur = [pols[0]]

    def reset(i: int) -> None:
        cur[0] = pols[i % len(pols)]
        cur[0].reset(seed + i)

    return (lambda obs, arm, z: cur[0](obs, arm)), reset


def bc_actor(kind: str, policy: Any) -> tuple[Actor, Callable[[int], None]]:
    import torch

    from wm_control.control.features import policy_observation

    def act(obs, arm, z):
        x = policy_observation(kind, obs.q, obs.qd, obs.goal, z, obs.object)
        with torch.no_grad():
            d = policy(torch.from_numpy(x[None]))[0].numpy()
        return obs.q + d

    return act, (lambda i: None)


def push_report(visual: str | Path, data: dict[str, str], json_path: str | Path | None = None,
                episodes: int = 100, bc_iterations: int = 8000, seed: int = 10_000, episode_s: float | None = None,
                bc_seeds: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """``data``: quality name ('expert', 'low', 'mixed') -> folder of that quality's camera bags. Each BC entry is
    trained once per seed of ``bc_seeds``; with several, its figures pool their episodes and ``per_seed`` lists
    each training seed's own."""
    bc_seeds = tuple(dict.fromkeys(int(b) for b in bc_seeds))
    if not bc_seeds:
        raise ValueError("bc_seeds: give at least one training seed")
    from wm_control.eval.visual_state import control_rate_episodes
    from wm_control.sim.robots import DATA_QUALITY, success_radius
    from wm_control.sim.robots import episode_s as sim_episode_s
    from wm_control.train.bc import fit_bc
    from wm_control.train.visual import load_visual

    t_all = time.time()
    vm = load_visual(visual)
    robot = vm.cfg.robot
    if vm.cfg.robot_config or robot not in DATA_QUALITY:
        raise ValueError(f"{visual}: a visual model of the simulated {robot!r}; eval push needs one trained on a "
                         f"task with an object and data qualities ({sorted(DATA_QUALITY)})")
    bad = [q for q in data if q not in ("expert", "low", "mixed")]
    if bad:
        raise ValueError(f"unknown data qualities {bad}: name each folder expert=, low= or mixed=")
    ep_s = episode_s or sim_episode_s(robot)
    radius = success_radius(robot)
    res: dict[str, Any] = {"evaluation": "push", "visual": str(visual), "robot": robot, "episodes": episodes,
                           "episode_s": ep_s, "seed": seed, "success_radius_m": radius,
                           "probe_r2": vm.meta.get("metrics", {}).get("encoder", {}).get("probe_r2"),
                           "note": "in-process closed loop in the simulator, same starts and goals for every entry",
                           "data": {}}
    for quality, folder in data.items():
        eps = control_rate_episodes(vm, folder)
        if any(e.object is None for e in eps):
            raise ValueError(f"{folder}: bags without the simulator's object labels (/sim/ground_truth/object): "
                             f"the privileged reference needs them; collect them with `wm-control collect`")
        print(f"[eval push] {quality}: {len(eps)} episodes from {folder}; fitting BC ({bc_iterations} iterations)",
              file=sys.stderr)
        actors = {"behaviour": behaviour_actor(robot, quality, seed)}
        fits: dict[str, list[dict[str, Any]]] = {}
        for name, kind in BC_ENTRIES.items():
            for b in bc_seeds:
                pol, info = fit_bc(eps, kind, bc_iterations, seed=b)
                fits.setdefault(name, []).append({"kind": kind, "seed": b, "seconds": info.get("seconds")})
                actors[name if len(bc_seeds) == 1 else f"{name} [seed {b}]"] = bc_actor(kind, pol)
        runs = closed_loop(vm, actors, episodes, seed, ep_s, radius=radius)
        entries = {"behaviour": runs["behaviour"]}
        for name, f in fits.items():
            if len(bc_seeds) == 1:
                entries[name] = {**runs[name], "bc": f[0]}
                continue
            per = [runs[f"{name} [seed {b}]"] for b in bc_seeds]
            entries[name] = {**score([d for r in per for d in r["final_distance_m"]], radius), "bc": f,
                             "per_seed": [{"seed": b, "success": r["success"], "success_95ci": r["success_95ci"],
                                           "median_final_distance_m": r["median_final_distance_m"]}
                                          for b, r in zip(bc_seeds, per)],
                             "wall_s": round(sum(r["wall_s"] for r in per), 1)}
        res["data"][quality] = {"folder": str(folder), "training_episodes": len(eps), "entries": entries,
                                "pixels_minus_behaviour_points": round(100 * (entries["BC from pixels"]["success"]
                                                                              - entries["behaviour"]["success"]), 1),
                                "pixels_minus_privileged_points": round(
                                    100 * (entries["BC from pixels"]["success"]
                                           - entries["BC, true object (privileged)"]["success"]), 1)}
        if json_path:
            write_json(json_path, res)
    res["seconds"] = round(time.time() - t_all, 1)
    if json_path:
        write_json(json_path, res)
        plot(res, figure_path(json_path))
    return res


def plot(res: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    qualities = list(res["data"])
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    names = ["behaviour", *BC_ENTRIES]
    colors = ["tab:gray", "tab:green", "tab:purple"]
    w = 0.8 / len(names)
    for j, name in enumerate(names):
        x = np.arange(len(qualities)) + (j - 1) * w
        e = [res["data"][q]["entries"][name] for q in qualities]
        y = np.array([100 * v["success"] for v in e])
        lo = y - np.array([100 * v["success_95ci"][0] for v in e])
        hi = np.array([100 * v["success_95ci"][1] for v in e]) - y
        ax[0].bar(x, y, w, yerr=[lo, hi], capsize=3, label=name, color=colors[j])
    ax[0].set_xticks(np.arange(len(qualities)), [f"{q} logs" for q in qualities])
    ax[0].set(ylabel="success % (object within 5 cm, 95% CI)", ylim=(0, 105),
              title=f"push from offline logs: {res['episodes']} episodes each, same starts and goals")
    ax[0].legend(fontsize=8)
    for j, name in enumerate(names):
        for q in qualities:
            d = np.sort(res["data"][q]["entries"][name]["final_distance_m"])
            ax[1].plot(100 * d, np.linspace(0, 100, len(d)), color=colors[j],
                       ls=["-", "--", ":"][qualities.index(q) % 3], label=f"{name}, {q}")
    ax[1].axvline(100 * res["success_radius_m"], color="k", lw=0.8)
    ax[1].set(xlabel="final object-to-goal distance (cm)", ylabel="% of episodes at or below", xlim=(0, 30),
              title="distribution of final distances")
    ax[1].legend(fontsize=7)
    ax[1].grid(alpha=0.3)
    save_figure(fig, path)
