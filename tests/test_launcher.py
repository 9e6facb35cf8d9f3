"""`wm-control launch`: a graph of processes from one params YAML; clean stop; says which node died."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from wm_control.ros.args import RosArgsError
from wm_control.ros.launcher import Launcher, graph_from_config

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
    p = launch(tmp_path, "scripted_controller:\n  ros__parameters:\n    command_interface: telepathy\n"
                         "    launch:\n      required: true\n")
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


# ------------------------------------------------------------------------------------------
# helpers: a launcher subprocess whose output is collected by a thread (no blocking reads)
# ------------------------------------------------------------------------------------------
def wait_for(cond, timeout=60.0, interval=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


def alive(pid):
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def node_children(pid):
    """{node type: pid} of the `wm_control run NODE` processes whose parent is pid.

    Read from /proc rather than `ps`, whose columns are cut to the terminal width (80 without one),
    which loses the node name behind a long interpreter path."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid != pid:
            continue
        for i in range(len(argv) - 2):
            if argv[i].endswith("wm_control") and argv[i + 1] == "run":
                out[argv[i + 2]] = int(entry)
                break
    return out


class Proc:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.lines = []
        self.pids = set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    @property
    def out(self):
        return "".join(self.lines)

    def ready(self, node=""):
        """How many times the nodes (or one node) said ready (not counting the launcher quoting them)."""
        return sum(x.startswith(f"[{node}") and not x.startswith("[launch]") and "]: ready" in x for x in self.lines)

    def children(self):
        kids = node_children(self.p.pid)
        self.pids |= set(kids.values())
        return kids

    def wait_exit(self, timeout=60):
        self.p.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.p.returncode

    def cleanup(self):
        for pid in [self.p.pid, *self.pids]:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.p.poll() is None:
            self.p.wait(timeout=10)


@pytest.fixture
def procs():
    started = []
    yield lambda argv: started.append(Proc(argv)) or started[-1]
    for p in started:
        p.cleanup()


def graph_file(tmp_path, extra):
    f = tmp_path / "graph.yaml"
    f.write_text(CONFIG.format(extra=extra))
    return f


def launch_proc(procs, tmp_path, extra, *args):
    return procs([sys.executable, "-m", "wm_control", "launch", str(graph_file(tmp_path, extra)), *args])


CONTROLLER = "scripted_controller:\n  ros__parameters:\n    rate: 20.0\n"


# ------------------------------------------------------------------------------------------
# the graph file: launch attributes, node-specific -p, unknown keys
# ------------------------------------------------------------------------------------------
def test_launch_attributes_and_their_defaults(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("/**:\n  ros__parameters:\n    use_sim_time: false\n    launch:\n      respawn_delay: 0.5\n"
                 "policy:\n  ros__parameters:\n    mode: hold\n"
                 "sim_robot:\n  ros__parameters:\n    launch:\n      required: true\n"
                 "world_model:\n  ros__parameters:\n    launch:\n      respawn: true\n      respawn_max: 2\n"
                 "teleop:\n  ros__parameters:\n    launch.respawn: true\n    launch.respawn_delay: 2\n")
    specs = {s.name: s for s in graph_from_config(f)}
    got = {n: (s.required, s.respawn, s.respawn_delay, s.respawn_max) for n, s in specs.items()}
    assert got == {"policy": (True, False, 0.5, 5), "sim_robot": (True, False, 0.5, 5),
                   "world_model": (False, True, 0.5, 2), "teleop": (False, True, 2.0, 5)}
    for bad, match in [("launch:\n      requird: true", "unknown launch attribute 'launch.requird'"),
                       ("launch:\n      required: 'yes'", "must be true or false"),
                       ("launch:\n      respawn_max: -1", "whole number"),
                       ("launch:\n      respawn_delay: soon", "seconds"),
                       ("launch: true", "unknown launch attribute 'launch'"),
                       ("launch:\n      remappings: /a:=/b", "list of 'from:=to'"),
                       ("launch:\n      remappings: ['/a=/b']", "list of 'from:=to'")]:
        f.write_text(f"world_model:\n  ros__parameters:\n    {bad}\n")
        with pytest.raises(RosArgsError, match=match):
            graph_from_config(f)
    # remappings reach the node's command line as -r, as launch_ros gives them
    f.write_text("policy:\n  ros__parameters:\n    launch:\n      remappings: ['/joint_states:=/arm/joint_states']\n")
    spec = graph_from_config(f)[0]
    cmd = Launcher(f).command(spec)
    assert cmd[cmd.index("/joint_states:=/arm/joint_states") - 1] == "-r"


def test_the_launch_keys_do_not_reach_the_nodes(tmp_path):
    """`launch.*` and `node_type` are for the launcher: the node neither gets nor warns about them."""
    from wm_control.ros.args import parse_ros_args

    f = tmp_path / "g.yaml"
    f.write_text("cam:\n  ros__parameters:\n    node_type: sim_robot\n    rate: 3.0\n"
                 "    launch:\n      respawn: true\n")
    a = parse_ros_args(["--ros-args", "--params-file", str(f), "-p", "launch.required:=true"])
    assert a.resolved_params("cam", "/") == {"rate": 3.0}


def test_p_can_target_one_node(tmp_path):
    f = graph_file(tmp_path, "policy:\n  ros__parameters:\n    mode: autonomous\n"
                             "world_model:\n  ros__parameters:\n    launch:\n      respawn: true\n")
    lc = Launcher(f, overrides=["policy:mode:=hold", "seed:=3", "world_model:launch.respawn:=false",
                                "sim_robot:launch.required:=true"])
    specs = {s.name: s for s in lc.specs}
    cmds = {n: lc.command(s) for n, s in specs.items()}
    assert cmds["policy"][-4:] == ["-p", "mode:=hold", "-p", "seed:=3"]
    assert cmds["sim_robot"][-2:] == ["-p", "seed:=3"] and "mode:=hold" not in cmds["sim_robot"]
    assert "-p" not in cmds["world_model"][:-2] and cmds["world_model"][-2:] == ["-p", "seed:=3"]
    assert not specs["world_model"].respawn and specs["sim_robot"].required
    with pytest.raises(RosArgsError, match="no node 'plicy' in .*; known nodes: sim_robot, policy, world_model$"):
        Launcher(f, overrides=["plicy:mode:=hold"])
    with pytest.raises(RosArgsError, match="name:=value or node:name:=value"):
        Launcher(f, overrides=["policy:mode"])


def test_a_key_beside_ros_parameters_is_an_error(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("sim_robot:\n  ros__parameters:\n    camera_rate: 10.0\n  paramters:\n    seed: 1\n")
    with pytest.raises(RosArgsError, match="section 'sim_robot' has 'paramters' beside 'ros__parameters'; "
                                           "only 'ros__parameters' is allowed there"):
        graph_from_config(f)


def test_launch_errors_are_one_line(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("sim_robot:\n  ros__parameters: [unclosed\n")
    typo = graph_file(tmp_path, "")
    cases = [([str(tmp_path / "missing.yaml")], "not found"),
             ([str(bad_yaml)], "not valid YAML at line"),
             ([str(typo), "-p", "nosuch:rate:=1"], "no node 'nosuch'")]
    for args, want in cases:
        r = subprocess.run([sys.executable, "-m", "wm_control", "launch", *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("wm-control launch: ") and want in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------
# required / optional / respawn, as launch_ros
# ------------------------------------------------------------------------------------------
def test_an_optional_node_dying_leaves_the_rest_running(tmp_path, procs):
    lp = launch_proc(procs, tmp_path, CONTROLLER)
    assert wait_for(lambda: lp.ready() >= 2), lp.out
    kids = lp.children()
    os.kill(kids["scripted_controller"], signal.SIGKILL)
    assert wait_for(lambda: "'scripted_controller' is optional" in lp.out), lp.out
    assert "node 'scripted_controller' (scripted_controller) exited with code -9 (signal SIGKILL)" in lp.out
    assert lp.p.poll() is None and alive(kids["sim_robot"]), lp.out
    os.killpg(lp.p.pid, signal.SIGINT)
    assert lp.wait_exit() == 0, lp.out
    assert not alive(kids["sim_robot"])


def test_a_required_node_dying_stops_the_graph(tmp_path, procs):
    lp = launch_proc(procs, tmp_path, CONTROLLER + "    launch:\n      required: true\n")
    assert wait_for(lambda: lp.ready() >= 2), lp.out
    kids = lp.children()
    os.kill(kids["scripted_controller"], signal.SIGKILL)
    assert lp.wait_exit() == 1, lp.out
    assert "node 'scripted_controller' (scripted_controller) exited with code -9 (signal SIGKILL)" in lp.out
    assert "'scripted_controller' is required: stopping the graph" in lp.out
    assert wait_for(lambda: not alive(kids["sim_robot"]), 30)


def test_the_policy_node_is_required_by_default(tmp_path, procs):
    lp = launch_proc(procs, tmp_path, "policy:\n  ros__parameters:\n    bundle: /nonexistent/bundle\n")
    assert lp.wait_exit(90) == 1, lp.out
    assert "node 'policy' (policy) exited with code 1" in lp.out and "'policy' is required" in lp.out


def test_respawn_then_give_up(tmp_path, procs):
    lp = launch_proc(procs, tmp_path, CONTROLLER + "    launch:\n      respawn: true\n      respawn_delay: 0.1\n"
                                                   "      respawn_max: 1\n")
    assert wait_for(lambda: lp.ready() >= 2), lp.out
    first = lp.children()
    os.kill(first["scripted_controller"], signal.SIGKILL)
    assert wait_for(lambda: lp.ready("scripted_controller") >= 2), lp.out  # a new one is up
    assert "respawning 'scripted_controller' in 0.1 s (respawn 1 of 1)" in lp.out
    second = lp.children()
    assert second["scripted_controller"] != first["scripted_controller"]
    assert second["sim_robot"] == first["sim_robot"]
    os.kill(second["scripted_controller"], signal.SIGKILL)
    assert wait_for(lambda: "is optional and stays down after 1 respawn" in lp.out), lp.out
    assert lp.p.poll() is None and alive(first["sim_robot"])
    os.killpg(lp.p.pid, signal.SIGINT)
    assert lp.wait_exit() == 0, lp.out


def test_the_launcher_exits_when_every_node_is_gone(tmp_path, procs):
    f = tmp_path / "one.yaml"
    f.write_text("scripted_controller:\n  ros__parameters:\n    command_interface: telepathy\n")
    lp = procs([sys.executable, "-m", "wm_control", "launch", str(f)])
    assert lp.wait_exit(90) == 1, lp.out
    assert "every node has exited" in lp.out


# ------------------------------------------------------------------------------------------
# no orphans: the launcher killed, stop() interrupted, SIGTERM to programs that use a Launcher
# ------------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only")
def test_nodes_die_with_a_sigkilled_launcher(tmp_path, procs):
    lp = launch_proc(procs, tmp_path, CONTROLLER)
    assert wait_for(lambda: lp.ready() >= 2), lp.out
    kids = lp.children()
    assert set(kids) == {"sim_robot", "scripted_controller"}
    os.kill(lp.p.pid, signal.SIGKILL)
    assert wait_for(lambda: not any(alive(pid) for pid in kids.values()), 30), \
        f"nodes outlived their launcher: {[k for k, pid in kids.items() if alive(pid)]}"


STOP_SCRIPT = r"""
import os, signal, subprocess, sys, threading, time
from wm_control.ros.launcher import Launcher

l = Launcher(sys.argv[1], echo=False)
# the node: a stubborn process that ignores SIGINT and SIGTERM
stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('[x]: ready', flush=True); time.sleep(300)"]
popen = subprocess.Popen
subprocess.Popen = lambda cmd, **kw: popen(stubborn, **kw)
l.start()
assert l.wait_ready(60), l.failure
child = l.procs[0].popen.pid
print("child", child, flush=True)

def impatient_user():
    end = time.monotonic() + 10  # until stop() has a handler of its own (old code: 10 s, then anyway)
    while signal.getsignal(signal.SIGINT) is signal.default_int_handler and time.monotonic() < end:
        time.sleep(0.01)
    while l.procs[0].popen.poll() is None:  # Ctrl-C again and again until the stubborn node is gone
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)

threading.Thread(target=impatient_user, daemon=True).start()
l.stop(timeout=200)
print("stopped", l.procs[0].popen.returncode, flush=True)
"""


def test_ctrl_c_during_stop_hurries_it_and_raises_nothing(tmp_path, procs):
    (tmp_path / "stop.py").write_text(STOP_SCRIPT)
    f = tmp_path / "one.yaml"
    f.write_text("sim_robot:\n  ros__parameters: {}\n")
    sp = procs([sys.executable, str(tmp_path / "stop.py"), str(f)])
    assert wait_for(lambda: "child " in sp.out), sp.out
    sp.pids.add(int(sp.out.split("child ", 1)[1].split()[0]))
    assert sp.wait_exit(120) == 0, sp.out  # without escalation stop() would wait 2 x 200 s
    assert "stopped -9" in sp.out and "Traceback" not in sp.out, sp.out


def test_sigterm_to_replay_stops_its_stack(tmp_path, procs):
    """`wm-control replay` (as eval and demo) turns SIGTERM into Ctrl-C: its stack is stopped, no orphans."""
    import numpy as np

    from wm_control.data.bags import BagWriter
    from wm_control.messages import convert as cv

    bag = tmp_path / "bag"
    with BagWriter(bag) as w:
        for i in range(5):
            w.write("/joint_states", 0.02 * i, cv.make_joint_state(w.reg.new, 0.02 * i, ["j0", "j1"], np.zeros(2)),
                    "sensor_msgs/msg/JointState")
    # sim_robot never subscribes to /joint_states: replay waits for it, so it is surely still running
    g = tmp_path / "stack.yaml"
    g.write_text("sim_robot:\n  ros__parameters:\n    camera_rate: 10.0\n    episode_s: 0.0\n")
    rp = procs([sys.executable, "-m", "wm_control", "replay", str(bag), "--config", str(g)])
    assert wait_for(lambda: rp.children() or rp.p.poll() is not None), rp.out
    kids = rp.children()
    assert "sim_robot" in kids, rp.out
    rp.p.send_signal(signal.SIGTERM)
    assert rp.wait_exit(60) == 130, rp.out  # as Ctrl-C: its finally stopped the stack
    assert "wm-control replay: interrupted" in rp.out and "Traceback" not in rp.out, rp.out
    assert wait_for(lambda: not alive(kids["sim_robot"]), 30), "replay's sim_robot outlived it"
