"""`wm-control launch`: a graph of processes from one params YAML; clean stop; says which node died."""

import os
import signal
import subprocess
import sys
import time

import pytest

from wm_control.launcher import graph_from_config
from wm_control.ros.args import RosArgsError

CONFIG = """
/**:
  ros__parameters:
    use_sim_time: false
sim_robot:
  ros__parameters:
    camera_rate: 10.0
    episode_s: 0.0
{extra}
"""


def launch(tmp_path, extra="", *args):
    f = tmp_path / "graph.yaml"
    f.write_text(CONFIG.format(extra=extra))
    return subprocess.Popen([sys.executable, "-m", "wm_control", "launch", str(f), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_graph_from_config(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text(CONFIG.format(extra="/arm2/cam:\n  ros__parameters:\n    node_type: sim_robot\n"))
    specs = graph_from_config(f)
    assert [(s.name, s.node_type, s.namespace) for s in specs] == [("sim_robot", "sim_robot", "/"),
                                                                    ("cam", "sim_robot", "/arm2")]
    f.write_text("teleporter:\n  ros__parameters: {}\n")
    with pytest.raises(RosArgsError, match="unknown type 'teleporter'"):
        graph_from_config(f)


def test_ctrl_c_stops_every_node_cleanly(tmp_path):
    p = launch(tmp_path, "scripted_controller:\n  ros__parameters:\n    rate: 20.0\n")
    out = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        line = p.stdout.readline()
        out.append(line)
        if sum("]: ready" in x for x in out) >= 2:
            break
    assert sum("]: ready" in x for x in out) == 2, "".join(out)
    os.killpg(p.pid, signal.SIGINT)
    rest, _ = p.communicate(timeout=20)
    assert p.returncode == 0, "".join(out) + rest
    # no node of this launch is left running
    ps = subprocess.run(["ps", "-eo", "pgid,args"], capture_output=True, text=True).stdout
    assert not [l for l in ps.splitlines() if l.strip().startswith(str(p.pid) + " ")]


def test_says_which_node_died_and_why(tmp_path):
    p = launch(tmp_path, "scripted_controller:\n  ros__parameters:\n    command_interface: telepathy\n")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1
    assert "node 'scripted_controller' (scripted_controller) exited with code 1" in out
    assert "command_interface must be position|trajectory" in out


def test_bad_config_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("sim_robot:\n  rate: 3\n")
    r = subprocess.run([sys.executable, "-m", "wm_control", "launch", str(f)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "ros__parameters" in r.stderr


def test_run_rejects_bad_command_line():
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "sim_robot", "--ros-args", "-p", "oops"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "name:=value" in r.stderr
    r = subprocess.run([sys.executable, "-m", "wm_control", "run", "nonexistent_node"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "unknown node" in r.stderr
