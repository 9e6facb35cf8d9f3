"""``wm-control eval suite``: groups of labelled policies through the lock-step graph, one JSON + PNG."""

import json

import pytest
import yaml

from wm_control.evaluate import expert_params
from wm_control.evaluate_suite import evaluate_suite


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
    import wm_control.evaluate as ev

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
