"""``wm-control eval [closed-loop|world-model|suite|visual|visual-state|push]``: evaluations that write
JSON + PNG."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from wm_control.cli.flags import choose, config_path, parse
from wm_control.errors import UserError
from wm_control.sim.robots import DEFAULT_ROBOT

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
PlannerParams = Annotated[list[str], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="NAME=VALUE")]
WHAT = {
    "closed-loop": "policies on sim_robot through the graph in lock-step (the default)",
    "world-model": "the ensemble on held-out bags: error vs horizon, uncertainty vs error, in vs out of distribution",
    "suite": "groups of labelled policies (one per offline data set) side by side",
    "visual": "the visual world model: teacher vs student, KV cache, latent vs real actions, speed",
    "visual-state": "what the visual latent adds to the ensemble's state and to a policy (goal from pixels)",
    "push": "pushing an object only the camera sees: behaviour vs BC from pixels vs BC with the true object",
}


@dataclass
class ClosedLoopOptions:
    """Policies on sim_robot through the graph in lock-step; JSON + PNG."""

    bundle: str | None = None
    """A policy bundle (default bundles/bc when --policy is not given)."""
    policy: str | None = None
    """Comma list of bundles, planner:BUNDLE (planner node + policy following its plans), expert or
    expert:noise=N,gain=G (a scripted behaviour policy)."""
    episodes: int = 50
    episode_s: float = 2.0
    """Seconds per episode."""
    robot: str = DEFAULT_ROBOT
    seed: int = 0
    device: Device = "auto"
    json: str = "runs/eval/closed_loop.json"
    planner_param: PlannerParams = field(default_factory=list)
    """A planner node parameter for planner:BUNDLE policies (repeatable), e.g. lam=1 or samples=128."""
    visual: str | None = None
    """The visual world model bundle for policies that see the camera (`train bc --visual`); default: the one
    each bundle recorded. The graph then has the camera in the loop: camera_ingest and world_model."""


@dataclass
class WorldModelOptions:
    """The ensemble on held-out bags and on bags of an unseen behaviour; JSON + PNG."""

    model: str = "runs/ensemble_self"
    """The (self-forced) ensemble checkpoint."""
    teacher: str | None = None
    """The teacher-forced checkpoint to compare (default runs/ensemble_teacher if it is there)."""
    heldout: str = f"data/{DEFAULT_ROBOT}_heldout"
    """Held-out bags (collected if empty)."""
    ood: str = f"data/{DEFAULT_ROBOT}_random"
    """Bags of an unseen behaviour (collected if empty)."""
    json: str = "runs/eval/world_model.json"


@dataclass
class SuiteOptions:
    """Groups of labelled policies side by side in one JSON + PNG."""

    suite: str = "eval_rwm.yaml"
    """The groups (YAML): a path or a file in config/."""
    json: str = "runs/eval/suite.json"
    episodes: int | None = None
    """Episodes per policy (default: the suite's own)."""
    device: Device = "auto"
    group: str | None = None
    """Only these groups (comma list)."""
    resume: bool = False
    """Keep results already in --json for the same setup."""
    planner_param: PlannerParams = field(default_factory=list)
    """A planner node parameter for planner:BUNDLE policies (repeatable)."""


@dataclass
class VisualOptions:
    """Teacher vs student error vs horizon, frames/s, KV cache vs recompute, latent vs real actions."""

    model: str = "runs/visual"
    """The visual checkpoint."""
    json: str = "runs/eval/visual.json"


@dataclass
class VisualStateOptions:
    """The visual latent in the ensemble's state (50-step error with and without) and a policy that
    sees the goal from pixels (closed loop)."""

    model: str = "runs/visual"
    """The visual checkpoint."""
    json: str = "runs/eval/visual_state.json"
    episodes: int = 50
    """Closed-loop episodes per policy."""


@dataclass
class PushOptions:
    """Per offline data set: the behaviour policy, BC from pixels and BC with the true object (privileged), in
    the simulator from the same starts and goals; success = object within the robot's radius at the end."""

    data: Annotated[list[str], tyro.conf.arg(metavar="QUALITY=FOLDER")]
    """Camera bags of each quality: expert=data/push_expert low=... mixed=... (``collect --quality``)."""
    model: str = "runs/visual_push"
    """The visual checkpoint trained on the task's video (its encoder makes the latent)."""
    json: str = "runs/eval/push.json"
    episodes: int = 100
    """Closed-loop episodes per entry."""
    bc_iterations: int = 8000
    bc_seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds of each BC entry (several: the figures pool them; per_seed has each one's)."""
    seed: int = 10_000
    """Episode i starts from the simulator reset with seed SEED + i (every entry the same)."""


def _planner_params(items: list[str]) -> dict[str, Any]:
    from wm_control.eval.closed_loop import check_planner_params, parse_params

    try:
        params = parse_params(items)
        check_planner_params(params)
    except ValueError as e:
        raise UserError(f"--planner-param: {e}") from None
    return params


def cmd_eval(argv: list[str]) -> int:
    what, argv = choose("wm-control eval", argv, WHAT, default="closed-loop")
    prog = f"wm-control eval {what}"
    if what == "world-model":
        from wm_control.eval.world_model import evaluate_world_model

        w, _ = parse(prog, argv, WorldModelOptions)
        teacher = w.teacher
        if teacher is None and Path("runs/ensemble_teacher/checkpoint.yaml").exists():
            teacher = "runs/ensemble_teacher"  # what `train ensemble --regime both` writes
        evaluate_world_model(teacher, w.model, heldout=w.heldout, ood=w.ood, json_path=w.json)
        return 0
    if what == "visual":
        from wm_control.eval.visual import evaluate_visual

        v, _ = parse(prog, argv, VisualOptions)
        print(json.dumps(evaluate_visual(v.model, v.json)["aims"], indent=2))
        return 0
    if what == "visual-state":
        from wm_control.eval.visual_state import visual_state_report

        s, _ = parse(prog, argv, VisualStateOptions)
        res = visual_state_report(s.model, s.json, episodes=s.episodes)
        print(json.dumps({"ensemble_error_ratio_with_latent": res["ensemble"]["ratio_at_horizon"],
                          "success": {k: v["success"] for k, v in res["goal_from_pixels"].items()
                                      if isinstance(v, dict)}}, indent=2))
        return 0
    if what == "push":
        from wm_control.eval.push import push_report

        o, _ = parse(prog, argv, PushOptions)
        data = {}
        for item in o.data:
            quality, sep, folder = item.partition("=")
            if not sep or not folder:
                raise UserError(f"--data {item!r}: give QUALITY=FOLDER, e.g. expert=data/push_expert")
            data[quality.strip()] = folder.strip()
        try:
            res = push_report(o.model, data, o.json, episodes=o.episodes, bc_iterations=o.bc_iterations, seed=o.seed,
                              bc_seeds=tuple(o.bc_seeds))
        except ValueError as e:
            raise UserError(str(e)) from None
        print(json.dumps({q: {k: round(v["success"], 3) for k, v in d["entries"].items()}
                          for q, d in res["data"].items()}, indent=2))
        return 0
    if what == "suite":
        from wm_control.eval.suite import evaluate_suite

        u, _ = parse(prog, argv, SuiteOptions)
        evaluate_suite(config_path(u.suite), u.json, episodes=u.episodes, device=u.device,
                       only=[g.strip() for g in u.group.split(",")] if u.group else None, resume=u.resume,
                       planner_params=_planner_params(u.planner_param))
        return 0
    from wm_control.eval.closed_loop import check_policy, evaluate, split_policies

    c, _ = parse(prog, argv, ClosedLoopOptions)
    planner_params = _planner_params(c.planner_param)
    policies = split_policies(c.policy or "") or [c.bundle or "bundles/bc"]
    if c.bundle and c.bundle not in policies:
        policies.insert(0, c.bundle)
    for p in policies:
        try:
            check_policy(p, c.visual)
        except ValueError as e:
            raise UserError(str(e)) from None
    evaluate(policies, episodes=c.episodes, robot=c.robot, episode_s=c.episode_s, seed=c.seed, device=c.device,
             json_path=c.json, planner_params=planner_params or None, visual=c.visual)
    return 0
