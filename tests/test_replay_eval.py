"""Replay in lock-step gives the same recorded outputs twice; closed-loop eval scores policies
through the real graph and writes JSON + PNG."""

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from wm_control.data.bags import CollectConfig, collect
from wm_control.data.replay import replay
from wm_control.eval.closed_loop import evaluate
from wm_control.messages import registry


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay_src")
    collect(CollectConfig(episodes=1, episode_s=0.8, image_width=16, image_height=16, camera_rate=10.0, seed=4),
            out, progress=False)
    return out / "ep_0000"


def read(path):
    with Reader(path) as r:
        return [(c.topic, t, bytes(raw)) for c, t, raw in r.messages()]


def test_lockstep_replay_is_repeatable_and_scored(bag, debug_bc, tmp_path):
    _, bundle = debug_bc
    reps = [replay(bag, bundle=bundle, out=tmp_path / f"out{i}", device="cpu", json_path=str(tmp_path / f"r{i}.json"))
            for i in range(2)]
    a, b = read(tmp_path / "out0"), read(tmp_path / "out1")
    assert len(a) == 41  # the first state, then one command per control tick over 0.8 s
    assert a == b  # same bytes at the same bag times
    for rep in reps:
        assert rep["lockstep_timeouts"] == 0
        assert rep["compared"] >= 40 and 0 <= rep["rmse_rad"] < 1.0
    cmds = np.stack([registry().deserialize(raw, "std_msgs/msg/Float64MultiArray").data for _, _, raw in a])
    assert np.all(np.isfinite(cmds))
    assert json.loads((tmp_path / "r0.json").read_text())["stack_commands"] == 41


def test_sqlite3_bag_replays_like_mcap(bag, debug_bc, tmp_path):
    """A robot's bag may be sqlite3 (the rosbag2 default before Iron): same stack output as MCAP."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    sq = tmp_path / "sqlite_bag"
    with Reader(bag) as r, Writer(sq, version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=registry().store) for c in r.connections}
        for c, t, raw in r.messages():
            w.write(conns[c.id], t, raw)
    assert list(sq.glob("*.db3"))
    _, bundle = debug_bc
    replay(bag, bundle=bundle, out=tmp_path / "from_mcap", device="cpu")
    rep = replay(sq, bundle=bundle, out=tmp_path / "from_sqlite", device="cpu")
    assert rep["lockstep_timeouts"] == 0
    assert read(tmp_path / "from_sqlite") == read(tmp_path / "from_mcap")


def test_eval_scores_bundle_and_expert_in_one_run(debug_bc, tmp_path):
    _, bundle = debug_bc
    out = evaluate([str(bundle), "expert"], episodes=3, episode_s=2.0, device="cpu",
                   json_path=str(tmp_path / "eval.json"))
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert [p["episodes"] for p in saved["policies"]] == [3, 3]
    expert = saved["policies"][1]
    assert expert["success_rate"] == 1.0 and expert["mean_final_distance"] < 0.02
    assert [e["episode"] for e in expert["per_episode"]] == [0, 1, 2]
    assert set(out["relative_to_expert"]) == {str(bundle), "expert"}


def test_replay_output_goes_under_runs_not_beside_the_bag(bag, debug_bc, tmp_path, monkeypatch):
    """The default output is runs/replay/BAG_NAME: beside the bag it would be one more robot log to train on."""
    _, bundle = debug_bc
    monkeypatch.chdir(tmp_path)
    rep = replay(bag, bundle=str(Path(bundle).resolve()), device="cpu")
    assert rep["recorded_to"] == str(Path("runs/replay") / Path(bag).name)
    assert (tmp_path / "runs" / "replay" / Path(bag).name).is_dir()
    assert not [p for p in Path(bag).parent.iterdir() if p.name.endswith("_replay")]


def test_policy_lists_keep_expert_specs_whole_and_bad_specs_are_refused_before_any_graph(tmp_path, capsys):
    from wm_control.cli import main
    from wm_control.eval.closed_loop import split_policies

    assert split_policies("expert:noise=0.05,expert:noise=0.15,gain=0.5,bundles/bc, planner:bundles/x") == \
        ["expert:noise=0.05", "expert:noise=0.15,gain=0.5", "bundles/bc", "planner:bundles/x"]
    assert split_policies("expert,gain=0.5") == ["expert", "gain=0.5"]  # plain expert takes no parameters
    rc = main(["eval", "closed-loop", "--policy", f"expert,{tmp_path / 'nothing'}", "--episodes", "1",
               "--json", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a bundle folder" in err and "Traceback" not in err
    assert not (tmp_path / "e.json").exists()  # nothing ran
