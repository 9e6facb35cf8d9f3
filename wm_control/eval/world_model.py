"""``wm-control eval world-model``: how good the ensemble's predictions are, and whether its
uncertainty tracks its own error. On held-out bags (never seen in training):

* relative error vs horizon (1, 5, 10, 25, 50 steps) of the teacher-forced model, the self-forced
  model and the "nothing changes" baseline: sum over rollouts of |prediction - truth| divided by
  the sum of |truth - start| (state in the model's normalised units; the baseline scores exactly 1);
* Spearman correlation between per-step uncertainty and per-step error over all rollouts and steps,
  and coverage: how often the truth falls inside mean +- k std of the members (k = 1, 2, 3);
* uncertainty in-distribution (held-out bags of the training behaviour) vs on data of a behaviour
  the model never saw (a random policy): it must be clearly higher on the latter.

Open-loop rollouts replay the logged actions; every member follows its own predictions.

An ensemble over (q, qd, visual latent) (``train ensemble --visual``) is evaluated on camera bags: its
latents are encoded from the frames as the world_model node does, and where the bags carry the
object's labels (the push task's ground-truth topic) the object is read back from the predicted
latents by a linear probe fitted on the training bags' latents: the object's error in cm vs horizon
for each model, against the probe on the true latents (the floor) and "the object stays where it
was" (what a model that never moves it scores), over all rollouts and over those in which the object
moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_control.data.dataset import DatasetConfig, load_episodes
from wm_control.report import figure_path, pyplot, save_figure, summary_line, write_json, wrote
from wm_control.sim.robots import DEFAULT_ROBOT
from wm_control.train.ensemble import heldout_rollouts, load_ensemble
from wm_control.world.ensemble import EnsembleDynamics, spearman

HORIZONS = (1, 5, 10, 25, 50)


def ensure_bags(path: Path, policy: str, episodes: int, seed: int, noise: float = 0.3, robot: str = DEFAULT_ROBOT,
                camera: bool = False) -> Path:
    """Bags at ``path``, collected when there are none; ``camera``: with camera frames at 64x64 (the named
    'mixed' quality stands for the expert where the robot has data qualities)."""
    if path.exists() and any(path.rglob("metadata.yaml")):
        return path
    from wm_control.data.bags import CollectConfig, collect
    from wm_control.sim.robots import DATA_QUALITY, episode_reset, episode_s

    summary_line(f"collecting {episodes} {policy} episodes into {path}", tag="eval world-model")
    if not camera:
        collect(CollectConfig(robot=robot, policy=policy, noise=noise if policy == "expert" else 0.0,
                              episodes=episodes, render=False, seed=seed), path)
        return path
    quality = "mixed" if policy == "expert" and robot in DATA_QUALITY else "custom"
    collect(CollectConfig(robot=robot, policy=policy, noise=0.0 if quality == "mixed" or policy != "expert" else noise,
                          quality=quality, episodes=episodes, episode_s=episode_s(robot), image_width=64,
                          image_height=64, episode_reset=episode_reset(robot), seed=seed), path)
    return path


def camera_episodes(paths: list[Path], rate: float, visual: str, max_episodes: int | None = None) -> list:
    """Episodes at the control rate with each step's latent (its latest frame encoded by the visual bundle,
    as the world_model node does) and, where the bags have them, the object labels."""
    from wm_control.data.dataset import find_bags
    from wm_control.train.bc import attach_latents

    bags = sorted(find_bags(paths))[:max_episodes]
    if not bags:
        raise ValueError(f"no bags under {', '.join(map(str, paths))}")
    eps = load_episodes(bags, DatasetConfig(rate=rate, load_images=True))
    attach_latents(eps, visual)
    return eps


def object_metrics(r: dict[str, np.ndarray], unc: np.ndarray, episodes: list, probe: np.ndarray, n: int,
                   horizon: int) -> dict[str, Any]:
    """The object read back from the mean predicted latent by the linear ``probe`` (cm), per horizon:
    the model, the probe on the true latents, the object where it was, and the model against the probe on the
    true latents (its own error with the probe's taken out); all rollouts and moving ones."""
    from wm_control.train.visual import ridge_apply

    obj = np.concatenate([e.object[:, :2] for e in episodes])  # aligned with heldout_rollouts' transitions
    idx = r["index"]
    steps = idx[:, None] + np.arange(1, horizon + 1)  # (B, K)
    truth = obj[steps]  # (B, K, 2)
    pred = ridge_apply(probe, r["members"].mean(0)[..., 2 * n:])
    floor = ridge_apply(probe, r["truth"][..., 2 * n:])
    err = 100 * np.linalg.norm(pred - truth, axis=-1)  # (B, K) cm
    floor_err = 100 * np.linalg.norm(floor - truth, axis=-1)
    drift = 100 * np.linalg.norm(pred - floor, axis=-1)  # the model's own error, the probe's taken out
    stays = 100 * np.linalg.norm(obj[idx][:, None] - truth, axis=-1)
    moving = stays[:, -1] > 1.0  # the object moves more than 1 cm over the horizon

    def per_h(e: np.ndarray, rows: np.ndarray) -> dict[int, float | None]:
        return {h: (float(np.median(e[rows, h - 1])) if rows.any() else None) for h in HORIZONS if h <= horizon}

    every = np.ones(len(idx), bool)
    return {"median_error_cm": per_h(err, every), "probe_on_true_latent_cm": per_h(floor_err, every),
            "object_stays_cm": per_h(stays, every),
            "vs_probe_on_true_latent_cm": per_h(drift, every),
            "moving": {"rollouts": int(moving.sum()), "median_error_cm": per_h(err, moving),
                       "probe_on_true_latent_cm": per_h(floor_err, moving), "object_stays_cm": per_h(stays, moving),
                       "vs_probe_on_true_latent_cm": per_h(drift, moving)},
            "spearman_uncertainty_object_error": spearman(unc.ravel(), err.ravel()),
            "error_by_step_cm": np.median(err, 0).tolist()}


def fit_object_probe(episodes: list, n: int) -> tuple[np.ndarray, float]:
    """Ridge probe latent -> object xy on these (training) episodes, and its R^2 on them."""
    from wm_control.train.visual import ridge_apply, ridge_fit

    z = np.concatenate([e.latent for e in episodes])
    y = np.concatenate([e.object[:, :2] for e in episodes])
    w = ridge_fit(z, y)
    r2 = 1 - float(((ridge_apply(w, z) - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    return w, r2


def rollout_metrics(model: EnsembleDynamics, episodes: list, horizon: int, robot: str) -> dict[str, Any]:
    r = heldout_rollouts(model, episodes, horizon, robot, max_starts=400, seed=1)
    std = model.uncertainty_scale.numpy()  # error and uncertainty in the same units
    members = r["members"] / std  # (M, B, K, ds)
    truth = r["truth"] / std  # (B, K, ds)
    start = (r["start"] / std)[:, None]  # (B, 1, ds)
    mean = members.mean(0)
    err = np.linalg.norm(mean - truth, axis=-1)  # (B, K)
    change = np.linalg.norm(truth - start, axis=-1)
    unc = model.uncertainty(torch.as_tensor(r["members"])).numpy()  # (B, K)
    sd = members.std(0)
    out = {
        "relative_error": {h: float(err[:, h - 1].sum() / change[:, h - 1].sum()) for h in HORIZONS if h <= horizon},
        "baseline_relative_error": {h: float(np.linalg.norm(start[:, 0] - truth[:, h - 1], axis=-1).sum()
                                             / change[:, h - 1].sum()) for h in HORIZONS if h <= horizon},
        "spearman_uncertainty_error": spearman(unc.ravel(), err.ravel()),
        "coverage": {f"{k}std": float(np.mean(np.abs(truth - mean) <= k * sd)) for k in (1, 2, 3)},
        "uncertainty_mean_by_step": unc.mean(0).tolist(),
        "error_mean_by_step": err.mean(0).tolist(),
        "rollouts": int(err.shape[0]),
        "_unc": unc, "_err": err, "_rollouts": r,
    }
    return out


def evaluate_world_model(teacher: str | None, self_forced: str, heldout: str = f"data/{DEFAULT_ROBOT}_heldout",
                         ood: str = f"data/{DEFAULT_ROBOT}_random", episodes: int = 40, horizon: int = 50,
                         json_path: str | None = None, probe_episodes: int = 60) -> dict:
    sf_model, sf_meta = load_ensemble(self_forced)
    robot = sf_meta["config"]["robot"]
    rate = sf_meta["config"]["control_rate"]
    visual = sf_meta.get("latent", {}).get("bundle") if sf_model.spec.latent_dim else None
    if sf_model.spec.latent_dim and not visual:
        raise ValueError(f"{self_forced}: its state has a visual latent but it records no visual bundle to encode "
                         f"the held-out frames with (train it with `train ensemble --visual`)")
    # episodes long enough for history + 50 steps
    ep_s = max(2.0, (horizon + sf_model.spec.history + 10) / rate)
    id_dir = ensure_bags(Path(heldout), "expert", episodes, seed=10_000, robot=robot, camera=bool(visual))
    ood_dir = ensure_bags(Path(ood), "random", episodes, seed=20_000, robot=robot, camera=bool(visual))
    if visual:
        id_eps, ood_eps = camera_episodes([id_dir], rate, visual), camera_episodes([ood_dir], rate, visual)
    else:
        cfg = DatasetConfig(rate=rate, load_images=False)
        id_eps, ood_eps = load_episodes([id_dir], cfg), load_episodes([ood_dir], cfg)
    models = {"self_forced": sf_model}
    if teacher:
        models["teacher_forced"] = load_ensemble(teacher)[0]
        if models["teacher_forced"].spec != sf_model.spec:
            raise ValueError(f"{teacher} and {self_forced} model different states: train both on the same data")
    res: dict[str, Any] = {"evaluation": "world_model", "robot": robot, "horizons": list(HORIZONS),
                           "heldout": str(id_dir), "ood": str(ood_dir), "episode_s_needed": ep_s, "models": {}}
    n = sf_model.spec.n
    probe = None
    if visual and all(e.object is not None for e in id_eps):
        train_eps = camera_episodes([Path(sf_meta["data"]["dir"])], rate, visual, max_episodes=probe_episodes)
        if all(e.object is not None for e in train_eps):
            probe, r2 = fit_object_probe(train_eps, n)
            res["object_probe"] = {"train_episodes": len(train_eps), "train_r2": r2, "visual": visual}
    for name, m in models.items():
        res["models"][name] = rollout_metrics(m, id_eps, horizon, robot)
        if probe is not None:
            res["models"][name]["object"] = object_metrics(res["models"][name].pop("_rollouts"),
                                                           res["models"][name]["_unc"], id_eps, probe, n, horizon)
        res["models"][name].pop("_rollouts", None)
    sf = res["models"]["self_forced"]
    ood_metrics = rollout_metrics(sf_model, ood_eps, horizon, robot)
    res["baseline_nothing_changes"] = sf["baseline_relative_error"]
    res["uncertainty_in_vs_out_of_distribution"] = {
        "in_distribution_mean": float(sf["_unc"].mean()), "out_of_distribution_mean": float(ood_metrics["_unc"].mean()),
        "ratio": float(ood_metrics["_unc"].mean() / max(sf["_unc"].mean(), 1e-12)),
        "in_by_step": sf["uncertainty_mean_by_step"], "out_by_step": ood_metrics["uncertainty_mean_by_step"],
        "ood_relative_error_50": ood_metrics["relative_error"].get(horizon),
        "auroc_step1": _auroc(ood_metrics["_unc"][:, 0], sf["_unc"][:, 0]),
        # the same rank correlation over held-out and unseen-behaviour rollouts together: does the
        # uncertainty order errors when the data are not all like the training data?
        "spearman_pooled_in_and_out": spearman(np.concatenate([sf["_unc"].ravel(), ood_metrics["_unc"].ravel()]),
                                               np.concatenate([sf["_err"].ravel(), ood_metrics["_err"].ravel()])),
        "spearman_out_of_distribution": ood_metrics["spearman_uncertainty_error"],
    }
    h = max(k for k in HORIZONS if k <= horizon)
    summary = {"self_forced_rel_error_50": sf["relative_error"][h],
               "spearman": sf["spearman_uncertainty_error"],
               "ood_uncertainty_ratio": res["uncertainty_in_vs_out_of_distribution"]["ratio"]}
    if "teacher_forced" in res["models"]:
        tf = res["models"]["teacher_forced"]
        summary["teacher_forced_rel_error_50"] = tf["relative_error"][h]
        summary["self_over_teacher_50"] = sf["relative_error"][h] / tf["relative_error"][h]
    if probe is not None:
        so = sf["object"]
        summary[f"object_median_error_cm_{h}"] = so["median_error_cm"].get(h)
        summary[f"object_moving_median_error_cm_{h}"] = so["moving"]["median_error_cm"].get(h)
        if "teacher_forced" in res["models"]:
            to = res["models"]["teacher_forced"]["object"]
            if so["moving"]["median_error_cm"].get(h) and to["moving"]["median_error_cm"].get(h):
                summary[f"object_self_over_teacher_moving_{h}"] = \
                    so["moving"]["median_error_cm"][h] / to["moving"]["median_error_cm"][h]
                summary[f"object_model_error_self_over_teacher_moving_{h}"] = \
                    so["moving"]["vs_probe_on_true_latent_cm"][h] / to["moving"]["vs_probe_on_true_latent_cm"][h]
    summary["beats_baseline_every_horizon"] = all(
        sf["relative_error"][k] < sf["baseline_relative_error"][k] for k in sf["relative_error"])
    res["summary"] = summary
    for name, m in res["models"].items():
        errs = "  ".join(f"h{k}: {v:.3f}" for k, v in m["relative_error"].items())
        summary_line(f"{name:>15}: relative error {errs}; Spearman(unc, err) {m['spearman_uncertainty_error']:.2f}; "
                     f"coverage 2std {m['coverage']['2std']:.2f}")
    summary_line(f"{'nothing changes':>15}: relative error 1.000 at every horizon (by definition)")
    for name, m in res["models"].items():
        if "object" in m:
            o = m["object"]
            summary_line(f"{name:>15}: object (read by the probe) median error at {h} steps "
                         f"{o['median_error_cm'][h]:.1f} cm, {o['moving']['median_error_cm'][h] or float('nan'):.1f} cm "
                         f"where it moves ({o['moving']['rollouts']} rollouts); the probe on true latents "
                         f"{o['probe_on_true_latent_cm'][h]:.1f} cm (against it "
                         f"{o['moving']['vs_probe_on_true_latent_cm'][h] or float('nan'):.1f} cm where it moves), "
                         f"the object left where it was "
                         f"{o['moving']['object_stays_cm'][h] or float('nan'):.1f} cm where it moves")
    u = res["uncertainty_in_vs_out_of_distribution"]
    summary_line(f"uncertainty in-distribution {u['in_distribution_mean']:.3f} vs random-policy data "
                 f"{u['out_of_distribution_mean']:.3f} ({u['ratio']:.1f}x); Spearman on unseen-behaviour data "
                 f"{u['spearman_out_of_distribution']:.2f}, pooled {u['spearman_pooled_in_and_out']:.2f}")
    plots = _plot(res, figure_path(json_path)) if json_path else None  # before the raw arrays go
    for m in list(res["models"].values()):
        m.pop("_unc", None)
        m.pop("_err", None)
    if json_path:
        write_json(json_path, res)
        wrote(json_path, plots)
    return res


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(uncertainty of an OOD sample > that of an ID sample)."""
    allv = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(allv)) + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _plot(res: dict, path: Path) -> Path:
    plt = pyplot()
    with_object = any("object" in m for m in res["models"].values())
    fig, ax = plt.subplots(1, 4 if with_object else 3, figsize=(20 if with_object else 15, 4.2))
    for name, m in res["models"].items():
        hs = list(m["relative_error"])
        ax[0].plot(hs, list(m["relative_error"].values()), "o-", label=name.replace("_", " "))
    hs = list(res["baseline_nothing_changes"])
    ax[0].plot(hs, list(res["baseline_nothing_changes"].values()), "k--", label="nothing changes")
    ax[0].set_xlabel("horizon (steps at 50 Hz)")
    ax[0].set_ylabel("relative error")
    ax[0].set_yscale("log")
    ax[0].legend()
    ax[0].set_title("open-loop prediction error, held-out bags")
    sf = res["models"]["self_forced"]
    ax[1].hexbin(sf["_unc"].ravel(), sf["_err"].ravel(), gridsize=40, bins="log", xscale="log", yscale="log",
                 mincnt=1)
    from matplotlib.ticker import NullFormatter

    ax[1].xaxis.set_minor_formatter(NullFormatter())  # log minor labels overlap on a narrow range
    ax[1].set_xlabel("ensemble disagreement (uncertainty)")
    ax[1].set_ylabel("error of the mean prediction")
    ax[1].set_title(f"self-forced: Spearman {sf['spearman_uncertainty_error']:.2f}")
    u = res["uncertainty_in_vs_out_of_distribution"]
    ax[2].plot(np.arange(1, len(u["in_by_step"]) + 1), u["in_by_step"], label="held-out expert (in distribution)")
    ax[2].plot(np.arange(1, len(u["out_by_step"]) + 1), u["out_by_step"], label="random policy (never seen)")
    ax[2].set_yscale("log")
    ax[2].set_xlabel("rollout step")
    ax[2].set_ylabel("mean uncertainty")
    ax[2].legend()
    ax[2].set_title(f"out of distribution: {u['ratio']:.1f}x higher")
    if with_object:
        for i, (name, m) in enumerate(res["models"].items()):
            o, own = m["object"]["moving"]["median_error_cm"], m["object"]["moving"]["vs_probe_on_true_latent_cm"]
            ax[3].plot(list(o), list(o.values()), "o-", color=f"C{i}", label=name.replace("_", " "))
            ax[3].plot(list(own), list(own.values()), "s--", color=f"C{i}",
                       label=f"{name.replace('_', ' ')}: against the probe on the true latent")
        o = next(m["object"]["moving"] for m in res["models"].values())
        ax[3].plot(list(o["object_stays_cm"]), list(o["object_stays_cm"].values()), "k--", label="object stays")
        ax[3].plot(list(o["probe_on_true_latent_cm"]), list(o["probe_on_true_latent_cm"].values()), ":",
                   color="gray", label="probe on the true latent")
        ax[3].set_xlabel("horizon (steps at 50 Hz)")
        ax[3].set_ylabel("object error, median (cm)")
        ax[3].legend()
        ax[3].set_title(f"object read from the latent ({o['rollouts']} rollouts where it moves)")
    return save_figure(fig, path)
