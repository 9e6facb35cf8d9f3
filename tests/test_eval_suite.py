"""``wm-control eval suite``: groups of labelled policies through the lock-step graph, one JSON + PNG."""

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from wm_control.eval.closed_loop import check_planner_params, expert_params, parse_params
from wm_control.eval.suite import evaluate_suite


def test_expert_specs():
    assert expert_params("expert") == {}
    assert expert_params("expert:noise=0.3,gain=0.1") == {"noise": 0.3, "gain": 0.1}
    with pytest.raises(ValueError, match="expert:noise"):
        expert_params("expert:speed=3")


def test_suite_runs_groups_side_by_side(debug_bc, tmp_path):
    _, bundle = debug_bc
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(yaml.safe_dump({"episodes": 2, "episode_s": 0.4, "groups": {
        "logs A": {"behaviour": "expert:noise=0.3,gain=0.5", "BC": str(bundle)},
        "logs B": {"clean expert": "expert"}}}, sort_keys=False))
    out = evaluate_suite(cfg, tmp_path / "suite.json")
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert (tmp_path / "suite.png").stat().st_size > 1000
    assert list(saved["groups"]) == ["logs A", "logs B"]
    assert list(saved["groups"]["logs A"]) == ["behaviour", "BC"]
    for res in (saved["groups"]["logs A"]["BC"], saved["groups"]["logs B"]["clean expert"]):
        assert res["episodes"] == 2 and 0.0 <= res["success_rate"] <= 1.0 and len(res["per_episode"]) == 2
    assert out["groups"]["logs A"]["behaviour"]["label"] == "behaviour"
    # resume: everything is in the file already, nothing runs again
    import wm_control.eval.closed_loop as ev

    def boom(*a, **k):
        raise AssertionError("ran again")

    orig, ev.run_episodes = ev.run_episodes, boom
    try:
        again = evaluate_suite(cfg, tmp_path / "suite.json", resume=True)
    finally:
        ev.run_episodes = orig
    assert again["groups"] == saved["groups"]


def test_missing_bundles_are_named(tmp_path):
    cfg = tmp_path / "suite.yaml"
    group = {"x": str(tmp_path / "nope"), "p": "planner:" + str(tmp_path / "nah")}
    cfg.write_text(yaml.safe_dump({"groups": {"g": group}}))
    with pytest.raises(SystemExit, match="g/x: .*nope"):
        evaluate_suite(cfg)


def test_planner_params_parse_and_check():
    assert parse_params(["lam=1", "samples=128", "warm_start=false", "device=cpu"]) == {
        "lam": 1, "samples": 128, "warm_start": False, "device": "cpu"}
    assert parse_params(["uncertainty_threshold=1e9"]) == {"uncertainty_threshold": 1e9}  # not YAML 1.1's string
    check_planner_params({"lam": 1, "samples": 128, "horizon": 8})
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["lam"])
    with pytest.raises(ValueError, match="unknown planner parameter.*lamda"):
        check_planner_params({"lamda": 1})


def test_suite_passes_planner_params_and_resume_respects_them(tmp_path, monkeypatch):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text("{}")  # only its presence is checked before running
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(yaml.safe_dump({"episodes": 2, "groups": {"g": {"plan": f"planner:{bundle}", "exp": "expert"}}},
                                  sort_keys=False))
    import wm_control.eval.closed_loop as ev

    calls = []

    def fake(policy, n, robot, ep_s, seed, device, planner_params=None):
        calls.append((policy, planner_params))
        return {"policy": policy, "episodes": n, "success_rate": 0.5, "mean_return": -1.0,
                "mean_final_distance": 0.01, "median_final_distance": 0.01, "wall_s": 0.0,
                **({"planner_params": planner_params} if planner_params else {}),
                "per_episode": [{"episode": i, "final_distance": 0.01, "success": True, "return": -1.0}
                                for i in range(n)]}

    monkeypatch.setattr(ev, "run_episodes", fake)
    js = tmp_path / "s.json"
    evaluate_suite(cfg, js, planner_params={"lam": 2.0})
    assert calls == [(f"planner:{bundle}", {"lam": 2.0}), ("expert", None)]  # only planner specs get them
    calls.clear()
    evaluate_suite(cfg, js, resume=True, planner_params={"lam": 2.0})
    assert calls == []  # same parameters: kept
    evaluate_suite(cfg, js, resume=True, planner_params={"lam": 0.5})
    assert calls == [(f"planner:{bundle}", {"lam": 0.5})]  # other parameters: the planner runs again
    assert json.loads(js.read_text())["groups"]["g"]["plan"]["planner_params"] == {"lam": 0.5}


def test_report_writes_json_figures_logs_and_logged_progress(tmp_path, capsys, monkeypatch):
    """wm_control/report.py: the one way results are written (JSON, PNG next to it, JSON lines, bars, summaries)."""
    from wm_control import report

    p = report.write_json(tmp_path / "new" / "r.json", {"x": np.float32(1.5), "v": np.arange(3), "t": (1, 2),
                                                        "nan": float("nan"), "path": tmp_path})
    saved = json.loads(p.read_text())
    assert saved["x"] == 1.5 and saved["v"] == [0, 1, 2] and saved["t"] == [1, 2] and math.isnan(saved["nan"])
    assert saved["path"] == str(tmp_path) and not list(p.parent.glob("*.tmp"))  # written whole, then renamed
    assert report.read_json(p)["v"] == [0, 1, 2] and report.read_json(tmp_path / "no.json") is None
    plt = report.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = report.save_figure(fig, report.figure_path(p))
    assert png == tmp_path / "new" / "r.png" and png.stat().st_size > 1000
    assert fig.number not in plt.get_fignums()  # closed after saving
    assert report.figure_path(p, "_frames") == tmp_path / "new" / "r_frames.png"
    with report.JsonLines(tmp_path / "log.jsonl") as log:
        log.write({"step": 1}, loss=np.float64(0.5))
        log.write(step=2)
    assert [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()] == [
        {"step": 1, "loss": 0.5}, {"step": 2}]
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal (a log): progress, but sparse
    bar = report.progress(3, "work")
    assert not bar.disable and bar.mininterval >= 30.0
    bar.update(1)
    bar.set_postfix(loss="1.0")
    bar.close()
    assert "work" in sys.stderr.getvalue()  # long work is never silent in a log
    assert report.progress(3, "x", enabled=False).disable
    monkeypatch.undo()
    report.summary_line("all good", tag="eval x")
    report.wrote(p, None, png)
    assert capsys.readouterr().out == f"[eval x] all good\nwrote {p} and {png}\n"
    assert report.stats([1, 2, 3, 4], (50,), with_max=True) == {"p50": 2.5, "max": 4.0, "mean": 2.5}
    assert list(report.machine(python=True)) == ["cpus", "python", "platform"]


def test_a_suite_entry_may_carry_its_own_planner_parameters():
    from wm_control.eval.suite import entry

    assert entry("BC", "bundles/bc", {"lam": 1.0}) == ("bundles/bc", {})
    assert entry("p", "planner:b", {"lam": 1.0, "samples": 64}) == ("planner:b", {"lam": 1.0, "samples": 64})
    assert entry("p0", {"policy": "planner:b", "planner": {"lam": 0.0}}, {"lam": 1.0, "samples": 64}) == \
        ("planner:b", {"lam": 0.0, "samples": 64})  # its own over the command line's
    for bad, why in (({"policy": "bundles/bc", "planner": {"lam": 0.0}}, "not a planner"),
                     ({"policy": "planner:b", "planner": {"lamda": 0.0}}, "unknown planner parameter"),
                     ({"bundle": "planner:b"}, "a policy spec, or")):
        with pytest.raises(SystemExit, match=why):
            entry("x", bad, None)


@pytest.mark.parametrize("name", ["eval_rwm.yaml", "eval_push.yaml", "eval_push_plan.yaml"])
def test_every_suite_shipped_in_config_has_valid_entries(name):
    from wm_control.eval.suite import entry

    suite = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / name).read_text())
    specs = [entry(label, spec, None) for group in suite["groups"].values() for label, spec in group.items()]
    assert specs and all(spec for spec, _ in specs)
