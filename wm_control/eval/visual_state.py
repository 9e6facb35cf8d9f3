"""``wm-control eval visual-state``: what the visual latent adds to the robot's state (JSON + PNG).

1. **ensemble**: two RWM-U ensembles trained the same way (preset, seed, data) on the camera bags at
   the control rate, one on (q, qd), one on (q, qd, visual latent); their open-loop error on the joint
   state at 50 steps (1 s) on the held-out camera bags. The latent must not make it worse.
2. **goal from pixels**: three behaviour-cloned policies on the same bags, seeing (cos q, sin q) plus
   the goal topic, plus the visual latent instead (the goal topic withheld), or plus nothing; each run
   closed-loop in the simulator (camera rendered at its rate, resized as camera_ingest does, encoded
   by the bundle's encoder) from the same starts and goals. Success = fingertip within 2 cm at the end.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np


def control_rate_episodes(vm, data_dir: str, rate: float = 50.0) -> list:
    """Episodes at the control rate with the latent of the latest frame at each step attached."""
    from wm_control.data.dataset import DatasetConfig, load_episodes
    from wm_control.train.visual import encode_all
    from wm_control.world.frames import FrameSpec, prepare_frame

    spec = FrameSpec(vm.cfg.image_size, vm.cfg.image_size)
    eps = load_episodes([data_dir], DatasetConfig(rate=rate))
    for e in eps:
        frames = np.stack([prepare_frame(f, spec) for f in e.frames])
        e.latent = ((encode_all(vm.encoder, [frames])[0] - vm.mean) / vm.std).astype(np.float32)
        e.frames = None  # the latent is what is kept
    return eps


def ensemble_error(ckpt: Path, held: list, horizon: int, robot: str) -> dict[str, Any]:
    from wm_control.train.ensemble import heldout_rollouts, load_ensemble

    model, meta = load_ensemble(ckpt)
    r = heldout_rollouts(model, held, horizon, robot, max_starts=400)
    n = len(held[0].joint_names)
    err = np.abs(r["members"].mean(0)[..., :2 * n] - r["truth"][..., :2 * n])  # (B, K, 2n)
    return {"q_mae_rad": err[..., :n].mean((0, 2)).tolist(), "qd_mae_rad_s": err[..., n:].mean((0, 2)).tolist(),
            f"q_mae_at_{horizon}_rad": float(err[:, -1, :n].mean()),
            f"qd_mae_at_{horizon}_rad_s": float(err[:, -1, n:].mean()),
            "latent_dim": int(meta["spec"]["latent_dim"]), "train_seconds": meta["train_seconds"]}


#: the goal-from-pixels variants: name -> observation kind (:mod:`wm_control.control.features`)
BC_VARIANTS = {"goal topic": "joint_trig_goal_xy", "pixels (no goal)": "joint_trig_latent", "neither": "joint_trig"}


def closed_loop(vm, policies: dict[str, tuple[str, Any]], episodes: int, seed: int = 123, episode_s: float = 2.0,
                control_rate: float = 50.0) -> dict[str, Any]:
    """Each policy (name -> (observation kind, :func:`wm_control.train.bc.fit_bc`'s policy)) from the same
    starts and goals in the simulator; frames at the camera rate."""
    import torch

    from wm_control.control.features import policy_observation
    from wm_control.sim import ArmConfig, SimArm
    from wm_control.world.frames import FrameSpec, prepare_frame
    from wm_control.world.visual import frames_to_input

    spec = FrameSpec(vm.cfg.image_size, vm.cfg.image_size)
    mean, std = torch.from_numpy(vm.mean), torch.from_numpy(vm.std)
    out: dict[str, Any] = {}
    for name, (kind, policy) in policies.items():
        arm = SimArm(ArmConfig(robot=vm.cfg.robot, image_width=96, image_height=96, render=True, seed=seed))
        arm.connect()
        rng = np.random.default_rng(seed)
        dist = []
        try:
            obs = arm.reset(seed=int(rng.integers(2**31)))
            for _ in range(episodes):
                obs = arm.new_goal()
                n_steps = int(round(episode_s * control_rate))
                next_cam, t, z = 0.0, 0.0, None
                for _k in range(n_steps):
                    with torch.no_grad():
                        if t + 1e-9 >= next_cam:
                            f = prepare_frame(arm.render(), spec)
                            z = ((vm.encoder(frames_to_input(torch.from_numpy(f[None]))) - mean) / std)[0].numpy()
                            next_cam += 1.0 / vm.cfg.frame_rate
                        d = policy(torch.from_numpy(policy_observation(kind, obs.q, None, obs.goal, z)[None]))[0]
                    arm.set_position_target(obs.q + d.numpy())
                    obs = arm.step(1.0 / control_rate)
                    t += 1.0 / control_rate
                dist.append(float(arm.distance_to_goal()))
        finally:
            arm.disconnect()
        d = np.array(dist)
        out[name] = {"success": float((d < 0.02).mean()), "mean_final_distance_m": float(d.mean()),
                     "episodes": episodes}
        print(f"[eval visual-state] {name:>14}: success {100 * out[name]['success']:5.1f}%  "
              f"mean final distance {d.mean():.4f} m", file=sys.stderr)
    return out


def visual_state_report(ckpt: str | Path = "runs/visual", json_path: str | Path | None = None,
                        preset: str = "quick", bc_iterations: int = 8000, episodes: int = 50,
                        horizon: int = 50, out_root: str | Path = "runs/visual_state") -> dict[str, Any]:
    from wm_control.train.bc import fit_bc
    from wm_control.train.ensemble import ensemble_preset, train_ensemble
    from wm_control.train.visual import load_visual

    t0 = time.time()
    vm = load_visual(ckpt)
    out_root = Path(out_root)
    if not vm.meta.get("heldout") or vm.cfg.robot_config:
        raise ValueError(f"{ckpt}: trained from a robot config's bags; eval visual-state runs the simulated task "
                         f"(use eval visual for what the model predicts on the robot's own held-out episodes)")
    train = control_rate_episodes(vm, vm.meta["data"])
    held = control_rate_episodes(vm, vm.meta["heldout"])
    print(f"[eval visual-state] {len(train)} training and {len(held)} held-out episodes at 50 Hz with latents",
          file=sys.stderr)
    res: dict[str, Any] = {"checkpoint": str(ckpt), "data": vm.meta["data"], "heldout": vm.meta["heldout"]}
    cfg = ensemble_preset(preset, robot=vm.cfg.robot, regime="self")
    ens: dict[str, Any] = {}
    for name, with_latent in (("joint_state", False), ("joint_state_and_latent", True)):
        eps = [e if with_latent else replace(e, latent=None) for e in train]
        ck = out_root / f"ensemble_{name}"
        if not (ck / "checkpoint.yaml").exists():
            train_ensemble(cfg, vm.meta["data"], ck, episodes=eps)
        ens[name] = ensemble_error(ck, [e if with_latent else replace(e, latent=None) for e in held], horizon,
                                   vm.cfg.robot)
        print(f"[eval visual-state] ensemble on {name}: joint position error at {horizon} steps "
              f"{ens[name][f'q_mae_at_{horizon}_rad']:.4f} rad", file=sys.stderr)
    ens["ratio_at_horizon"] = ens["joint_state_and_latent"][f"q_mae_at_{horizon}_rad"] / \
        ens["joint_state"][f"q_mae_at_{horizon}_rad"]
    res["ensemble"] = {**ens, "horizon": horizon, "preset": preset}
    pols = {name: (kind, fit_bc(train, kind, bc_iterations)[0]) for name, kind in BC_VARIANTS.items()}
    res["goal_from_pixels"] = closed_loop(vm, pols, episodes)
    res["goal_from_pixels"]["note"] = ("BC on (cos q, sin q) + the goal topic / + the visual latent with the goal "
                                       "topic withheld / + nothing; closed loop in the simulator")
    res["seconds"] = round(time.time() - t0, 1)
    if json_path:
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(res, indent=2))
        _plot(res, p.with_suffix(".png"))
    return res


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    e = res["ensemble"]
    for name in ("joint_state", "joint_state_and_latent"):
        y = e[name]["q_mae_rad"]
        ax[0].plot(np.arange(1, len(y) + 1), y, label=name.replace("_", " "))
    ax[0].set(title="ensemble open-loop error on held-out bags", xlabel="steps (50 Hz)",
              ylabel="joint position MAE (rad)")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    g = {k: v for k, v in res["goal_from_pixels"].items() if isinstance(v, dict)}
    ax[1].bar(list(g), [100 * v["success"] for v in g.values()], color=["tab:blue", "tab:green", "tab:gray"])
    ax[1].set(title="BC policy: where the goal comes from (closed loop)", ylabel="success %")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
