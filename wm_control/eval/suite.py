"""``wm-control eval suite``: several policies per offline data set, in the true simulator, side by side.

A suite file (YAML) names groups (one per offline data set) and, in each, labelled policy specs as
``wm-control eval`` takes them: a bundle folder (the policy node), ``planner:BUNDLE`` (the planner node
with the policy node following its plans), ``expert`` or ``expert:noise=N,gain=G`` (the scripted
behaviour policy that collected the logs)::

    episodes: 50
    groups:
      expert logs:
        behaviour: "expert:noise=0.3"
        BC: bundles/bc
        PPO lambda=0: bundles/ppo_expert_lam0

A planner entry may carry its own planner parameters (over the command line's ``--planner-param``)::

        planner lambda=0: {policy: "planner:bundles/push_planner_low", planner: {lam: 0.0}}

Every policy runs the same ``episodes`` (same simulator seed: paired starts and goals) through the real
graph in lock-step. One JSON with everything and one PNG (success rate and mean return per group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wm_control.report import figure_path, pyplot, read_json, save_figure, summary_line, write_json, wrote
from wm_control.sim.robots import DEFAULT_ROBOT, success_radius


def evaluate_suite(config: str | Path, json_path: str | Path | None = None, episodes: int | None = None,
                   device: str = "auto", only: list[str] | None = None, resume: bool = False,
                   planner_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the suite; with ``resume``, results already in ``json_path`` for the same group, label, policy
    spec, episodes, episode length and seed are kept instead of run again (a long suite survives a stop,
    and a group can be added later). The file is rewritten after every policy. ``planner_params`` go to
    every ``planner:`` policy's planner node (a result made with other parameters is run again)."""
    from wm_control.eval.closed_loop import missing_bundle, run_episodes
    from wm_control.eval.imagined_vs_real import summary_text

    suite = yaml.safe_load(Path(config).read_text())
    groups: dict[str, dict[str, str]] = suite["groups"]
    if only:
        groups = {k: v for k, v in groups.items() if k in only}
        if not groups:
            raise SystemExit(f"no group named {only} in {config} (groups: {list(suite['groups'])})")
    entries = {g: {label: entry(label, spec, planner_params) for label, spec in pol.items()}
               for g, pol in groups.items()}
    missing = [f"{g}/{label}: {m}" for g, pol in entries.items() for label, (spec, _) in pol.items()
               if (m := missing_bundle(spec))]
    if missing:
        raise SystemExit("bundles missing (build them first, see the README's offline RL section):\n  "
                         + "\n  ".join(missing))
    n = episodes or int(suite.get("episodes", 50))
    ep_s, seed, robot = float(suite.get("episode_s", 2.0)), int(suite.get("seed", 0)), suite.get("robot", DEFAULT_ROBOT)
    out: dict[str, Any] = {"evaluation": "suite", "config": str(config), "robot": robot, "episodes": n,
                           "episode_s": ep_s, "seed": seed, "success_radius_m": success_radius(robot),
                           "mode": "lockstep (sim time)", "groups": {}}
    old: dict[str, Any] = {}
    prev = (read_json(json_path) if resume else None) or {}
    if prev and tuple(prev.get(k) for k in ("episodes", "episode_s", "seed", "robot")) == (n, ep_s, seed, robot):
        old = prev.get("groups", {})
        out["groups"] = {g: dict(r) for g, r in old.items() if g not in groups}  # groups not asked for stay
    for g, pol in groups.items():
        res: dict[str, Any] = {}
        out["groups"][g] = res
        for label, (spec, params) in entries[g].items():
            r = old.get(g, {}).get(label)
            if r is None or r.get("policy") != str(spec) or r.get("planner_params", {}) != params:
                r = run_episodes(str(spec), n, robot, ep_s, seed, device, planner_params=params or None)
                r["label"] = label
            else:
                summary_line(f"{label}: kept from {json_path}", tag=g)
            res[label] = r
            summary_line(f"{label:>16}: success {100 * r['success_rate']:5.1f}%  mean return {r['mean_return']:8.3f}  "
                         f"mean final distance {r['mean_final_distance']:.4f} m  ({r['wall_s']:.0f} s)"
                         f"{summary_text(r)}", tag=g)
            if json_path:
                write_json(json_path, out)  # after every policy: a stopped suite resumes from here
    if json_path:
        write_json(json_path, out)
        plot_suite(out, figure_path(json_path))
        wrote(json_path, figure_path(json_path))
    return out


def entry(label: str, spec: Any, planner_params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(policy spec, planner parameters) of a suite entry: a spec, or {policy: SPEC, planner: {NAME: VALUE}}."""
    from wm_control.eval.closed_loop import check_planner_params

    own: dict[str, Any] = {}
    if isinstance(spec, dict):
        if set(spec) - {"policy", "planner"} or "policy" not in spec or not isinstance(spec.get("planner", {}), dict):
            raise SystemExit(f"suite entry {label!r}: a policy spec, or {{policy: SPEC, planner: {{NAME: VALUE}}}}; "
                             f"not {spec!r}")
        own = dict(spec.get("planner") or {})
        spec = spec["policy"]
    spec = str(spec)
    if not spec.startswith("planner:"):
        if own:
            raise SystemExit(f"suite entry {label!r}: planner parameters for {spec}, which is not a planner: entry")
        return spec, {}
    params = {**(planner_params or {}), **own}
    try:
        check_planner_params(params)
    except ValueError as exc:
        raise SystemExit(f"suite entry {label!r}: {exc}") from None
    return spec, params


def plot_suite(out: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    groups = out["groups"]
    fig, axes = plt.subplots(2, len(groups), figsize=(5.5 * len(groups), 7), squeeze=False)
    for j, (g, res) in enumerate(groups.items()):
        labels = list(res)
        x = np.arange(len(labels))
        colors = plt.cm.tab10(np.arange(len(labels)) % 10)
        succ = np.array([100 * res[k]["success_rate"] for k in labels])
        ax = axes[0, j]
        ci = [res[k].get("success_95ci") for k in labels]
        err = None if any(c is None for c in ci) else \
            [succ - [100 * c[0] for c in ci], [100 * c[1] for c in ci] - succ]  # 95% Wilson intervals
        ax.bar(x, succ, color=colors, yerr=err, capsize=4)
        tops = succ if err is None else succ + err[1]
        for xi, v, top in zip(x, succ, tops):
            ax.text(xi, top + 1, f"{v:.0f}%", ha="center", fontsize=9)
        ax.set_ylim(0, 110)
        ax.set_ylabel("success rate (%)" + (", 95% CI" if err is not None else ""))
        ax.set_title(f"{g}: {out['episodes']} episodes")
        ax.set_xticks(x, labels, rotation=20, ha="right")
        ax = axes[1, j]  # the final distance: what success is judged on (a return mixes in the task's shaping)
        ax.bar(x, [100 * res[k]["median_final_distance"] for k in labels], color=colors)
        if out.get("success_radius_m"):
            ax.axhline(100 * out["success_radius_m"], color="k", lw=0.8, ls="--", label="success radius")
            ax.legend(fontsize=8)
        ax.set_ylabel("median final distance to the goal (cm)")
        ax.set_xticks(x, labels, rotation=20, ha="right")
    save_figure(fig, path)
