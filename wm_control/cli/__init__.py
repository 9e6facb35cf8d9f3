"""``wm-control``: one command, subcommands (see ``wm-control --help``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def _config_path(name: str) -> str:
    p = Path(name)
    if p.exists():
        return str(p)
    for cand in (CONFIG_DIR / name, Path(__file__).resolve().parents[1] / "config" / name):
        if cand.exists():
            return str(cand)
    raise SystemExit(f"config {name!r} not found (looked in ., {CONFIG_DIR})")


def _write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")


def cmd_run(argv: list[str]) -> int:
    from wm_control.ros.runner import NODE_TYPES, run_node

    backend = None
    if argv[:1] and argv[0].startswith("--backend"):
        backend = argv[0].split("=", 1)[1] if "=" in argv[0] else argv[1]
        argv = argv[1:] if "=" in argv[0] else argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: wm-control run [--backend auto|dds|rclpy] NODE [--ros-args -p k:=v -r a:=b "
              "--params-file F ...]\nnodes: " + ", ".join(sorted(NODE_TYPES))
              + "\nwm-control run NODE --help: its parameters (type, default, description)")
        return 0 if argv else 2
    return run_node(argv[0], argv[1:], backend)


def cmd_launch(a: argparse.Namespace) -> int:
    from wm_control.errors import UserError
    from wm_control.ros.launcher import Launcher

    try:
        config = _config_path(a.config)
    except SystemExit as exc:
        raise UserError(f"{exc}; give the path of a ROS params YAML (node: ros__parameters: ...)") from None
    # a bad graph or -p is a RosArgsError: main() prints it as one line (exit 2)
    return Launcher(config, overrides=a.param or []).run(a.duration)


def cmd_demo(a: argparse.Namespace) -> int:
    from wm_control.cli.demo import run_demo

    return run_demo(_config_path(a.config), a.duration, a.json, episodes=a.episodes, preset=a.preset)


def cmd_collect(a: argparse.Namespace) -> int:
    from wm_control.data.bags import CollectConfig, collect

    episode_s = a.episode_s or {"reacher": 2.0, "pusher": 5.0}[a.robot]
    cfg = CollectConfig(robot=a.robot, policy=a.policy, noise=a.noise, gain=a.gain, episodes=a.episodes,
                        episode_s=episode_s, image_width=a.image_size, image_height=a.image_size,
                        render=not a.no_images, seed=a.seed, goal_region=a.goal_region)
    summary = collect(cfg, a.out)
    print(f"collected {len(summary['episodes'])} bags in {a.out}: policy {a.policy} noise {a.noise}, "
          f"success {100 * summary['success_rate']:.0f}%, mean final distance "
          f"{summary['mean_final_distance']:.4f} m")
    return 0


def cmd_record(a: argparse.Namespace) -> int:
    from wm_control.data.bags import record

    res = record(a.out, a.topics, a.duration, overwrite=a.overwrite)
    print(json.dumps(res, indent=2))
    return 0


def cmd_bag(a: argparse.Namespace) -> int:
    """``bag info BAG`` / ``bag repair IN OUT``: what a bag holds; a damaged bag made whole again."""
    from wm_control.data.bags import bag_info, repair_bag
    from wm_control.errors import UserError

    if a.bag_cmd == "info":
        print(json.dumps(bag_info(a.bag), indent=2))
        return 0
    try:
        res = repair_bag(a.bag, a.out, overwrite=a.overwrite)
    except FileExistsError as exc:
        raise UserError(str(exc)) from None
    print(f"{a.bag} -> {a.out}: {res['report'] if res['damaged'] else 'no damage found'}; "
          f"wrote {res['messages']} messages on {len(res['topics'])} topics")
    for topic, n in sorted(res["topics"].items()):
        print(f"  {topic}: {n}")
    for topic, why in sorted(res["skipped_topics"].items()):
        print(f"  {topic}: not written ({why})")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    if a.what == "transport":
        from wm_control.bench.transport import bench_transport

        res = bench_transport(duration=a.duration)
    elif a.what == "loop":
        from wm_control.bench.loop import bench_loop

        res = bench_loop(a.bundle, duration=a.duration, device=a.device, realtime_priority=a.realtime_priority)
    elif a.what == "ensemble":
        from wm_control.bench.ensemble import bench_ensemble

        res = bench_ensemble(a.bundle if a.bundle != "bundles/bc" else "bundles/ensemble", device=a.device,
                             threads=a.threads)
    elif a.what == "visual":
        from wm_control.bench.visual import bench_visual

        res = bench_visual(a.bundle if a.bundle != "bundles/bc" else "bundles/visual", device=a.device)
    elif a.what == "planner":
        from wm_control.bench.planner import bench_planner

        res = bench_planner(a.bundle if a.bundle != "bundles/bc" else "bundles/ensemble", device=a.device,
                            duration=a.duration)
    else:
        raise SystemExit(f"unknown benchmark {a.what!r}")
    _write_json(a.json, res)
    return 0


def cmd_bundle(a: argparse.Namespace) -> int:
    from wm_control.world import bundle as bmod

    if a.bundle_cmd == "keygen":
        key, pub = bmod.generate_keypair(a.dir, a.name)
        print(f"wrote {key} (private: keep it off the robot) and {pub} (give it to the nodes: trusted_keys)")
        return 0
    if a.bundle_cmd == "sign":
        sig = bmod.sign_bundle(a.bundle, a.key)
        b = bmod.load_bundle(a.bundle)
        print(f"signed bundle {b.id} -> {sig}")
        return 0
    b = bmod.load_bundle(a.bundle, expect_id=a.expect_id, trusted_keys=a.trusted_key or None,
                         require_signature=a.require_signature)
    signed = f", signed by key {b.signed_by}" if b.signed_by else ""
    print(f"bundle {a.bundle}: ok, id {b.id}{signed}; joints {b.joint_names}, {b.control_rate:g} Hz, "
          f"graphs {sorted(b.manifest['graphs'])}")
    return 0


def cmd_dataset(a: argparse.Namespace) -> int:
    from wm_control.data.dataset import DatasetConfig, load_episodes

    eps = load_episodes(a.bags, DatasetConfig(rate=a.rate, load_images=not a.no_images))
    info = {"episodes": len(eps), "steps": int(sum(len(e) for e in eps)),
            "joint_names": eps[0].joint_names if eps else [],
            "per_episode": [{"source": e.source, "steps": len(e), "duration_s": float(e.t[-1] - e.t[0]),
                             "frames": None if e.frames is None else list(e.frames.shape)} for e in eps]}
    print(json.dumps(info, indent=2))
    _write_json(a.json, info)
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    if a.stage == "visual":
        from wm_control.train.visual import export_visual, train_visual, visual_preset

        cfg = visual_preset(a.preset, robot=a.robot, episodes=a.episodes, seed=a.seed)
        ckpt = train_visual(cfg, a.data, a.out or "runs/visual", heldout_dir=a.heldout, resume=a.resume)
        print(f"checkpoint: {ckpt}")
        if a.bundle:
            print(f"bundle: {export_visual(ckpt, a.bundle)}")
        return 0
    if a.stage == "bc":
        from wm_control.train.bc import export_bc, train_bc
        from wm_control.train.presets import bc_preset

        cfg = bc_preset(a.preset, robot=a.robot, iterations=a.iterations, episodes=a.episodes, seed=a.seed)
        ckpt = train_bc(cfg, a.data or f"data/{cfg.robot}_expert", a.out or "runs/bc")
        print(f"checkpoint: {ckpt}")
        if a.bundle:
            print(f"bundle: {export_bc(ckpt, a.bundle)}")
        return 0
    if a.stage == "policy":
        from wm_control.train.ppo import ppo_preset, sweep

        lams = [float(x) for x in a.lam.split(",")] if a.lam else [None]
        cfg = ppo_preset(a.preset, iterations=a.iterations, seed=a.seed, num_envs=a.num_envs,
                         device=None if a.device == "auto" else a.device)
        lams = [cfg.lam if x is None else x for x in lams]
        out = a.out or "runs/ppo"
        res = sweep(cfg, lams, a.ensemble, out, a.bundle, data_dirs=[a.data] if a.data else None,
                    json_path=a.json or f"{out}/sweep.json")
        for r in res["runs"]:
            extra = f", bundle {r['bundle']}" if "bundle" in r else ""
            print(f"lambda {r['lam']:g}: checkpoint {r['checkpoint']}{extra}")
        print(f"summary: {a.json or f'{out}/sweep.json'}")
        return 0
    from wm_control.train.ensemble import ensemble_preset, export_ensemble, train_ensemble

    regimes = ["teacher", "self"] if a.regime == "both" else [a.regime]
    for regime in regimes:
        cfg = ensemble_preset(a.preset, robot=a.robot, iterations=a.iterations, episodes=a.episodes, seed=a.seed,
                              regime=regime, arch=a.arch, members=a.members,
                              bootstrap=a.bootstrap, prior_scale=a.prior_scale, horizon=a.horizon)
        out = a.out if (a.out and len(regimes) == 1) else f"{a.out or 'runs/ensemble'}_{regime}"
        ckpt = train_ensemble(cfg, a.data or f"data/{cfg.robot}_expert", out)
        if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes
            continue
        print(f"checkpoint ({regime}-forcing): {ckpt}")
        if a.bundle and regime == regimes[-1]:
            print(f"bundle: {export_ensemble(ckpt, a.bundle, policy_bundle=a.policy_bundle)}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    import yaml

    from wm_control.world.bundle import load_bundle

    kind = yaml.safe_load((Path(a.checkpoint) / "checkpoint.yaml").read_text()).get("kind")
    if kind == "visual":
        from wm_control.train.visual import export_visual

        out = export_visual(a.checkpoint, a.out)
    elif kind == "ensemble":
        from wm_control.train.ensemble import export_ensemble

        out = export_ensemble(a.checkpoint, a.out, policy_bundle=a.policy_bundle)
    elif kind == "ppo_policy":
        from wm_control.train.ppo import export_ppo

        out = export_ppo(a.checkpoint, a.out)
    else:
        from wm_control.train.bc import export_bc

        out = export_bc(a.checkpoint, a.out, max_step=a.max_step)
    b = load_bundle(out)
    print(f"bundle {out} ({b.id}): graphs {sorted(b.manifest['graphs'])}, joints {b.joint_names}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    what = a.what or "closed-loop"
    from wm_control.eval.closed_loop import check_planner_params, parse_params

    try:
        planner_params = parse_params(a.planner_param)
        check_planner_params(planner_params)
    except ValueError as e:
        raise SystemExit(f"--planner-param: {e}")
    if what == "world-model":
        from wm_control.eval.world_model import evaluate_world_model

        teacher = a.teacher
        if teacher is None and Path("runs/ensemble_teacher/checkpoint.yaml").exists():
            teacher = "runs/ensemble_teacher"  # what `train ensemble --regime both` writes
        evaluate_world_model(teacher, a.model or "runs/ensemble_self", heldout=a.heldout, ood=a.ood,
                             json_path=a.json if a.json != "runs/eval/closed_loop.json" else "runs/eval/world_model.json")
        return 0
    if what == "visual":
        from wm_control.eval.visual import evaluate_visual

        res = evaluate_visual(a.model or "runs/visual",
                              a.json if a.json != "runs/eval/closed_loop.json" else "runs/eval/visual.json")
        print(json.dumps(res["aims"], indent=2))
        return 0
    if what == "visual-state":
        from wm_control.eval.visual_state import visual_state_report

        res = visual_state_report(a.model or "runs/visual",
                                  a.json if a.json != "runs/eval/closed_loop.json" else "runs/eval/visual_state.json",
                                  episodes=a.episodes)
        print(json.dumps({"ensemble_error_ratio_with_latent": res["ensemble"]["ratio_at_horizon"],
                          "success": {k: v["success"] for k, v in res["goal_from_pixels"].items()
                                      if isinstance(v, dict)}}, indent=2))
        return 0
    if what == "suite":
        from wm_control.eval.suite import evaluate_suite

        json_path = a.json if a.json != "runs/eval/closed_loop.json" else "runs/eval/suite.json"
        evaluate_suite(_config_path(a.suite), json_path,
                       episodes=a.episodes if a.episodes != 50 else None, device=a.device,
                       only=[g.strip() for g in a.group.split(",")] if a.group else None, resume=a.resume,
                       planner_params=planner_params)
        return 0
    if what != "closed-loop":
        raise SystemExit(f"unknown evaluation {what!r} "
                         f"(available: closed-loop, world-model, suite, visual, visual-state)")
    from wm_control.eval.closed_loop import evaluate

    policies = [p.strip() for p in (a.policy or "").split(",") if p.strip()] or [a.bundle or "bundles/bc"]
    if a.bundle and a.bundle not in policies:
        policies.insert(0, a.bundle)
    evaluate(policies, episodes=a.episodes, robot=a.robot, episode_s=a.episode_s, seed=a.seed, device=a.device,
             json_path=a.json, planner_params=planner_params or None)
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    from wm_control.data.replay import replay

    rep = replay(a.bag, bundle=a.bundle, config=a.config, out=a.out, lockstep=not a.rate, rate=a.rate or 1.0,
                 control_rate=a.control_rate, device=a.device, json_path=a.json, echo=a.verbose)
    print(json.dumps({k: v for k, v in rep.items() if k != "mean_abs_error_rad"}, indent=2))
    return 0


def cmd_teleop(a: argparse.Namespace) -> int:
    """The teleop node in the foreground (keyboard from this terminal or its window)."""
    from wm_control.ros.runner import run_node

    argv = ["--ros-args", *a.ros_args] if a.ros_args is not None else []
    flags = [f"{k}:={v}" for k, v in (("input", a.input), ("view", a.view)) if v]
    if flags:  # the flags win over params files and -p
        argv += ["--ros-args", *[x for f in flags for x in ("-p", f)]]
    return run_node("teleop", argv, a.backend)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wm-control", description="world-model robot control stack "
                                "(`wm-control -v VERB ...` shows tracebacks; `wm-control --backend auto|dds|rclpy "
                                "VERB ...` chooses the backend of every node it starts)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run one node: run NODE [--ros-args ...]", add_help=False)

    s = sub.add_parser("launch", help="start a graph from a ROS params YAML as separate processes")
    s.add_argument("config")
    s.add_argument("-p", "--param", action="append", metavar="[NODE:]NAME:=VALUE",
                   help="name:=value for every node, node:name:=value for that node only; also the launch "
                        "attributes, e.g. world_model:launch.respawn:=false")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.set_defaults(fn=cmd_launch)

    s = sub.add_parser("demo", help="the main job: the stack on the simulated robot, with a summary")
    s.add_argument("--config", default="demo.yaml")
    s.add_argument("--duration", type=float, default=20.0, help="seconds of the live graph")
    s.add_argument("--episodes", type=int, default=50, help="closed-loop evaluation episodes (0: none)")
    s.add_argument("--preset", default="quick", choices=["debug", "quick", "full"],
                   help="training preset when the bundle has to be trained first")
    s.add_argument("--json", default="runs/demo/summary.json")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("collect", help="run behaviour policies in the simulator, one MCAP bag per episode")
    s.add_argument("--out", required=True)
    s.add_argument("--robot", default="reacher", choices=["reacher", "pusher"])
    s.add_argument("--policy", default="expert", choices=["expert", "random"])
    s.add_argument("--noise", type=float, default=0.0)
    s.add_argument("--gain", type=float, default=1.0, help="expert: fraction of the way to the IK solution per step")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--episode-s", type=float, default=None, help="default: 2 s reacher, 5 s pusher")
    s.add_argument("--image-size", type=int, default=96)
    s.add_argument("--no-images", action="store_true")
    s.add_argument("--goal-region", default="full", choices=["full", "half"])
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_collect)

    s = sub.add_parser("record", help="record live topics to an MCAP rosbag2")
    s.add_argument("topics", nargs="*", help="topics (TOPIC or TOPIC:TYPE); default: all discovered")
    s.add_argument("-o", "--out", required=True)
    s.add_argument("--duration", type=float, default=None)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_record)

    s = sub.add_parser("bag", help="bag info BAG | bag repair IN OUT: inspect a bag; rewrite a cut or damaged one")
    bag = s.add_subparsers(dest="bag_cmd", required=True, metavar="info|repair")
    b = bag.add_parser("info", help="topics, types and counts of what is readable, and any damage (JSON)")
    b.add_argument("bag")
    b = bag.add_parser("repair", help="every recoverable message of a cut or damaged bag into a new, "
                       "indexed MCAP rosbag2; says what was recovered and lost")
    b.add_argument("bag", metavar="IN")
    b.add_argument("out", metavar="OUT")
    b.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_bag)

    s = sub.add_parser("bundle", help="bundle verify|keygen|sign: check a bundle (its id); sign one with ed25519")
    bsub = s.add_subparsers(dest="bundle_cmd", required=True, metavar="verify|keygen|sign")
    b = bsub.add_parser("verify", help="every check a node makes before it loads the bundle; prints its id")
    b.add_argument("bundle")
    b.add_argument("--expect-id", default=None, help="refuse unless the bundle id is this one")
    b.add_argument("--trusted-key", action="append", default=[], help="ed25519 public key (PEM); repeatable")
    b.add_argument("--require-signature", action="store_true")
    b = bsub.add_parser("keygen", help="a new ed25519 key pair: DIR/NAME.key (keep it off the robot), DIR/NAME.pub")
    b.add_argument("dir")
    b.add_argument("--name", default="bundle_signing")
    b = bsub.add_parser("sign", help="verify the bundle, then write BUNDLE/bundle.sig over its id")
    b.add_argument("bundle")
    b.add_argument("--key", required=True, help="the private key (PEM) from `bundle keygen`")
    s.set_defaults(fn=cmd_bundle)

    s = sub.add_parser("dataset", help="read bags into time-aligned episodes and summarise them")
    s.add_argument("bags", nargs="+")
    s.add_argument("--rate", type=float, default=50.0)
    s.add_argument("--no-images", action="store_true")
    s.add_argument("--json", default=None)
    s.set_defaults(fn=cmd_dataset)

    s = sub.add_parser("train", help="train a stage: train bc|ensemble|policy --preset debug|quick|full")
    s.add_argument("stage", choices=["bc", "ensemble", "policy", "visual"],
                   help="bc: behaviour cloning; ensemble: the RWM-U dynamics ensemble; policy: PPO inside the "
                        "ensemble; visual: the visual world model (JEPA encoder, decoder, latent actions, teacher, "
                        "student, adapter)")
    s.add_argument("--resume", action="store_true",
                   help="visual: continue an interrupted run (finished stages kept; the encoder from its last "
                        "checkpoint)")
    s.add_argument("--heldout", default=None,
                   help="visual: held-out camera bags (default DATA_heldout; collected if empty)")
    s.add_argument("--ensemble", default="runs/ensemble_self", help="policy: the ensemble checkpoint to train in")
    s.add_argument("--lam", default=None,
                   help="policy: uncertainty penalty lambda; a comma list is a sweep (one policy and bundle each)")
    s.add_argument("--num-envs", type=int, default=None, help="policy: imagined environments in parallel")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="policy: torch device")
    s.add_argument("--json", default=None, help="policy: sweep summary (default OUT/sweep.json)")
    s.add_argument("--regime", default="both", choices=["self", "teacher", "both"], help="ensemble: forcing regime")
    s.add_argument("--arch", default=None, choices=["mlp", "gru"], help="ensemble: member architecture")
    s.add_argument("--members", type=int, default=None)
    s.add_argument("--bootstrap", default=None, choices=["episode", "window"],
                   help="ensemble: resample whole episodes (default) or single windows per member")
    s.add_argument("--prior-scale", type=float, default=None, help="ensemble: randomised prior functions scale")
    s.add_argument("--horizon", type=int, default=None, help="ensemble: self-forcing rollout length")
    s.add_argument("--policy-bundle", default=None, help="ensemble: put this bundle's policy into the bundle too")
    s.add_argument("--preset", default="quick", choices=["debug", "quick", "full"])
    s.add_argument("--data", default=None, help="folder of bags (collected there if empty; policy: start states, "
                   "default the ensemble's data)")
    s.add_argument("--out", default=None, help="checkpoint folder (default runs/<stage>)")
    s.add_argument("--bundle", default=None, help="also export a bundle here")
    s.add_argument("--robot", default=None, choices=["reacher", "pusher"])
    s.add_argument("--iterations", type=int, default=None)
    s.add_argument("--episodes", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("export", help="checkpoint -> verified bundle (ONNX graphs + manifest)")
    s.add_argument("checkpoint")
    s.add_argument("--out", required=True)
    s.add_argument("--max-step", type=float, default=0.15, help="rate limit stored in the bundle (rad/tick)")
    s.add_argument("--policy-bundle", default=None, help="ensemble: also carry this bundle's policy graph")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("eval", help="evaluate: eval [closed-loop|world-model|suite|visual|visual-state] ...")
    s.add_argument("what", nargs="?", default=None)
    s.add_argument("--bundle", default=None)
    s.add_argument("--policy", default=None, help="comma list of bundles and/or 'expert'")
    s.add_argument("--episodes", type=int, default=50)
    s.add_argument("--episode-s", type=float, default=2.0)
    s.add_argument("--robot", default="reacher")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    s.add_argument("--json", default="runs/eval/closed_loop.json")
    s.add_argument("--model", default=None, help="world-model: the (self-forced) ensemble checkpoint; "
                   "visual: the visual checkpoint (default runs/visual)")
    s.add_argument("--teacher", default=None, help="world-model: the teacher-forced checkpoint to compare (default runs/ensemble_teacher if there)")
    s.add_argument("--heldout", default="data/reacher_heldout", help="world-model: held-out bags (collected if empty)")
    s.add_argument("--ood", default="data/reacher_random", help="world-model: bags of an unseen behaviour")
    s.add_argument("--suite", default="eval_rwm.yaml", help="suite: groups of labelled policies (YAML)")
    s.add_argument("--group", default=None, help="suite: only these groups (comma list)")
    s.add_argument("--resume", action="store_true", help="suite: keep results already in --json for the same setup")
    s.add_argument("--planner-param", action="append", default=None, metavar="NAME=VALUE",
                   help="a planner node parameter for planner:BUNDLE policies (repeatable), e.g. lam=1 samples=128")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("replay", help="play a rosbag2 through the stack under sim time; record and score it")
    s.add_argument("bag")
    s.add_argument("--bundle", default=None, help="policy bundle to run (default graph: the policy node)")
    s.add_argument("--config", default=None, help="or a graph YAML (use_sim_time: true) to run instead")
    s.add_argument("--out", default=None, help="MCAP bag for what the stack publishes (default BAG_replay)")
    s.add_argument("--rate", type=float, default=None, help="play at this multiple of real time (default: lock-step)")
    s.add_argument("--control-rate", type=float, default=50.0)
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    s.add_argument("--json", default=None)
    s.add_argument("-v", "--verbose", action="store_true", help="show the stack's log")
    s.set_defaults(fn=cmd_replay)

    s = sub.add_parser("teleop", help="drive the robot: keyboard / sensor_msgs/Joy -> /teleop/command (policy TELEOP)")
    s.add_argument("--input", default=None, choices=["keyboard", "joy", "both"], help="default: keyboard")
    s.add_argument("--view", default=None, choices=["auto", "window", "topic", "mjpeg", "none"],
                   help="camera | preview: auto (a window where there is a display, else topic)")
    s.add_argument("--backend", default=None, choices=["auto", "dds", "rclpy"])
    s.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=None,
                   help="node parameters and remaps, as for `wm-control run` (-p k:=v, --params-file F, -r a:=b)")
    s.set_defaults(fn=cmd_teleop)

    s = sub.add_parser("bench", help="benchmarks that write JSON")
    s.add_argument("what", choices=["transport", "loop", "ensemble", "planner", "visual"])
    s.add_argument("--threads", type=int, default=1, help="ensemble: ONNX Runtime intra-op threads")
    s.add_argument("--json", default=None)
    s.add_argument("--duration", type=float, default=10.0)
    s.add_argument("--bundle", default="bundles/bc")
    s.add_argument("--realtime-priority", type=int, default=0, help="loop: SCHED_FIFO priority for the policy node")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"])
    s.set_defaults(fn=cmd_bench)
    return p


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message is the whole story (no traceback without -v)."""
    from wm_control.data.dataset import DatasetError
    from wm_control.errors import UserError
    from wm_control.messages.convert import ConversionError
    from wm_control.ros.api import ConfigError
    from wm_control.ros.args import RosArgsError
    from wm_control.world.bundle import BundleError

    return (UserError, BundleError, ConversionError, DatasetError, ConfigError, RosArgsError,
            FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    verbose = False
    while argv[:1] and (argv[0] in ("-v", "--verbose", "--backend") or argv[0].startswith("--backend=")):
        if argv[0] in ("-v", "--verbose"):
            verbose, argv = True, argv[1:]
            continue
        # every tool's own nodes and the nodes it launches: auto | dds | rclpy (as `run --backend`)
        if "=" in argv[0]:
            value, argv = argv[0].split("=", 1)[1], argv[1:]
        else:
            value, argv = (argv[1] if len(argv) > 1 else ""), argv[2:]
        if value not in ("auto", "dds", "rclpy"):
            print(f"wm-control: --backend must be auto, dds or rclpy, not {value!r}", file=sys.stderr)
            return 2
        os.environ["WM_BACKEND"] = value
    if verbose:
        os.environ["WM_VERBOSE"] = "1"
    verb = argv[0] if argv else "wm-control"
    try:
        if argv[:1] == ["run"]:
            return cmd_run(argv[1:])
        a = build_parser().parse_args(argv)
        return a.fn(a)
    except KeyboardInterrupt:
        if verbose:
            raise
        print(f"wm-control {verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line that says what to fix; the traceback with -v
        if verbose:
            raise
        expected = isinstance(exc, _expected_errors())
        msg = str(exc).strip() or type(exc).__name__
        if not expected:  # one line: the cause and how to see more
            msg = f"{type(exc).__name__}: {msg.splitlines()[0]} (run `wm-control -v {verb} ...` for the traceback)"
        print(f"wm-control {verb}: {msg}", file=sys.stderr)
        return 2


def node_main(node_type: str) -> int:
    """``ros2 run wm_control <node_type>`` entry point."""
    from wm_control.ros.runner import run_node

    return run_node(node_type, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
