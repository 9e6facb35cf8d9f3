"""Each entry point as a subprocess with a tiny budget (CleanRL style)."""

import json
import os
import subprocess
import sys


def wm(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "wm_control", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_collect_then_dataset(tmp_path):
    r = wm("collect", "--out", str(tmp_path / "d"), "--episodes", "2", "--episode-s", "0.3", "--image-size", "16",
           "--policy", "random", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert "collected 2 bags" in r.stdout
    r = wm("dataset", str(tmp_path / "d"), "--json", str(tmp_path / "ds.json"))
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "ds.json").read_text())
    assert info["episodes"] == 2 and info["joint_names"] == ["joint0", "joint1"]
    assert info["per_episode"][0]["frames"][1:] == [16, 16, 3]


def test_bench_transport_writes_json(tmp_path):
    r = wm("bench", "transport", "--duration", "1", "--json", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "t.json").read_text())
    for k in ("joint_state", "image_96x96_rgb8"):
        rt = res["round_trip"][k]["round_trip_ms"]
        assert rt["n"] > 50 and 0 < rt["p50"] <= rt["p99"]
    assert res["timer_100hz"]["achieved_hz"] > 0  # how close to 100: the benchmark's JSON, not a test


def test_demo_runs_the_stack_and_evaluates(tmp_path, debug_ensemble, debug_visual):
    """The README's main job with debug bundles: live graph (sim -> camera_ingest -> world_model, policy <-
    planner), then the evaluation of the policy, the planner and the expert."""
    import yaml

    graph = yaml.safe_load(open("config/demo.yaml"))
    graph["policy"]["ros__parameters"]["bundle"] = str(debug_ensemble[1])
    graph["planner"]["ros__parameters"]["bundle"] = str(debug_ensemble[1])
    graph["world_model"]["ros__parameters"]["bundle"] = str(debug_visual[1])
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(yaml.safe_dump(graph))
    r = wm("demo", "--config", str(cfg), "--duration", "4", "--episodes", "2", "--json", str(tmp_path / "demo.json"),
           timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((tmp_path / "demo.json").read_text())
    assert s["received"]["joint_states"] > 0 and s["received"]["commands"] > 0  # counts, not rates (load)
    assert s["received"]["images"] > 0 and s["image_shape"] == [96, 96, 3]
    assert s["node_failure"] is None and sorted(s["nodes"]) == ["camera_ingest", "planner", "policy", "sim_robot",
                                                                "world_model"]
    assert s["received"]["latents"] > 0 and s["received"]["previews"] > 0  # the world model streamed
    assert float(s["world_model"]["frame.rate_hz"]) > 0 and float(s["controller"]["commands.rate_hz"]) > 0
    assert int(s["controller"].get("ticks.plan", 0)) > 0  # the policy node followed plans
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert [p["episodes"] for p in ev["policies"]] == [2, 2, 2]
    assert ev["policies"][1]["policy"].startswith("planner:")
    assert "learned policy reaches" in r.stdout


def test_missing_egl_is_a_clear_error():
    r = wm("run", "sim_robot", env={"MUJOCO_GL": "no_such_backend"}, timeout=60)
    assert r.returncode == 1
    assert "MUJOCO_GL" in (r.stdout + r.stderr)
    assert "Traceback" not in r.stdout + r.stderr


def test_errors_are_one_line_that_says_what_to_fix(tmp_path, debug_bc):
    """replay, dataset, record and launch: a user's mistake is one line on stderr, exit 2, no traceback;
    ``wm-control -v`` shows the traceback."""
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all")
    _, bundle = debug_bc
    cases = [
        (("replay", str(tmp_path / "missing.mcap"), "--bundle", str(bundle)), "not found"),
        (("replay", str(junk), "--bundle", str(bundle)), "cannot read"),
        (("replay", str(junk), "--bundle", str(tmp_path)), "manifest"),
        (("dataset", str(tmp_path / "missing.mcap")), "does not exist"),
        (("dataset", str(junk)), "not an MCAP file"),
        (("launch", str(tmp_path / "missing.yaml")), "not found"),
    ]
    for args, what in cases:
        r = wm(*args, timeout=60)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and len(lines) == 1, (args, r.stderr)
        assert lines[0].startswith(f"wm-control {args[0]}: ") and what in lines[0], (args, lines)
    r = wm("-v", "replay", str(tmp_path / "missing.mcap"), "--bundle", str(bundle), timeout=60)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_backend_flag_reaches_every_node_a_tool_starts(monkeypatch):
    """`wm-control --backend X VERB`: the tool's own nodes and the nodes it launches use X (WM_BACKEND)."""
    import wm_control.cli as cli

    seen = {}
    monkeypatch.setenv("WM_BACKEND", "auto")  # recorded: the test's own setting is undone after it
    monkeypatch.setattr(cli, "cmd_run", lambda argv: seen.setdefault("env", os.environ.get("WM_BACKEND")) and 0)
    assert cli.main(["--backend", "dds", "run", "policy"]) == 0 and seen["env"] == "dds"
    assert cli.main(["--backend=rclpy", "-v", "run", "policy"]) == 0 and os.environ["WM_BACKEND"] == "rclpy"
    assert cli.main(["--backend", "nope", "run", "policy"]) == 2
