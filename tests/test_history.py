"""One control-grid aligner (:mod:`wm_control.control.history`): the planner node's online window equals
the training data's :func:`wm_control.data.dataset.align` on the same recorded streams, whatever their
jitter, drops, duplicates and arrival order; and the boundary rules that both share."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wm_control.control.history import TIME_EPS, ControlHistory, align_grid, sort_stream
from wm_control.data.dataset import DatasetConfig, _Streams, align

N = 2
LATTICE = 1e-5  # s: stamps are whole multiples (as stamps in ns are); the grid's float error stays far below it


@st.composite
def recordings(draw):
    """A recording as a bag holds it: joint states and commands in arrival order, each stamped."""
    rate = draw(st.sampled_from([20.0, 50.0, 100.0]))
    dt = 1.0 / rate
    H = draw(st.integers(1, 5))
    t0 = draw(st.sampled_from([0.0, 1000.0, 1.7e9]))
    period = draw(st.sampled_from([0.005, 0.01, 0.013, 0.02, 0.03]))
    duration = draw(st.floats(0.3, 2.5))
    ticks = lambda s: int(round(s / LATTICE))  # noqa: E731
    events = []  # (arrival key, kind, stamp, values...)
    q = draw(st.lists(st.floats(-2, 2), min_size=N, max_size=N)).copy()
    i, t = 0, 0.0
    gap_at = draw(st.one_of(st.none(), st.floats(0.1, 2.0)))
    while t < duration:
        if gap_at is not None and t >= gap_at:  # a gap in the joint states (longer or shorter than max_gap)
            t += draw(st.floats(0.05, 0.7))
            gap_at = None
        jitter = draw(st.integers(-ticks(0.4 * period), ticks(0.4 * period)))
        stamp = ticks(t) + jitter
        q = [v + draw(st.floats(-0.05, 0.05)) for v in q]
        qd = [draw(st.floats(-1, 1)) for _ in range(N)]
        late = draw(st.sampled_from([0, 0, 0, 0, 1, 2, 5]))  # arrival: up to a few messages late
        if draw(st.integers(0, 9)) > 0:  # 10% dropped
            events.append((i + late + 0.5, "state", stamp, np.array(q), np.array(qd)))
            if draw(st.integers(0, 19)) == 0:  # a duplicate stamp with other values
                events.append((i + late + 0.6, "state", stamp, np.array(q) + 0.1, np.array(qd)))
        if draw(st.integers(0, 5)) > 0:  # the command answering it, a little later (or lost)
            delay = draw(st.sampled_from([0, 0, 1, 2, 37, 100, 500]))
            c = np.array(q) + np.array([draw(st.floats(-0.1, 0.1)) for _ in range(N)])
            events.append((i + late + 0.7, "command", stamp + delay, c))
        i += 1
        t += period
    events.sort(key=lambda e: e[0])
    return dt, H, t0, events


def streams(t0, events):
    s = _Streams()
    for e in events:
        if e[1] == "state":
            s.js_t.append(t0 + e[2] * LATTICE)
            s.q.append(e[3])
            s.qd.append(e[4])
        else:
            s.cmd_t.append(t0 + e[2] * LATTICE)
            s.cmd.append(e[3])
    return s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(recordings(), st.sampled_from([0.05, 0.5]))
def test_the_online_window_equals_the_offline_alignment(rec, max_gap):
    dt, H, t0, events = rec
    s = streams(t0, events)
    episodes = align(s, ["joint0", "joint1"], DatasetConfig(rate=1.0 / dt, max_gap=max_gap), "test")
    states_t = np.sort(np.asarray(s.js_t))
    for e in episodes:
        online = ControlHistory(dt, H, N)
        fed = 0
        stamp = [t0 + ev[2] * LATTICE for ev in events]
        for k in range(max(H - 1, 1), len(e)):
            t = e.t[k]
            after = states_t[states_t > t]
            upto = after[0] if len(after) else math.inf  # the state after t: the right end of its interpolation
            need = [j for j, ev in enumerate(events) if (ev[1] == "state" and stamp[j] <= upto)
                    or (ev[1] == "command" and stamp[j] <= t)]
            while fed <= max(need):  # every message the alignment at t uses has arrived (and maybe more)
                ev = events[fed]
                if ev[1] == "state":
                    online.add_state(stamp[fed], ev[3], ev[4])
                else:
                    online.add_command(stamp[fed], ev[3])
                fed += 1
            states, acts, now = online.window(t)
            rows = slice(k - H + 1, k + 1)
            atol = 1e-4 if t0 > 1e6 else 1e-9  # the grid times' float error (0.2 us at 1.7e9 s) times the speed
            np.testing.assert_allclose(states, np.concatenate([e.q[rows], e.qd[rows]], axis=1), rtol=0, atol=atol)
            np.testing.assert_array_equal(acts, e.action[k - H + 1: k])
            np.testing.assert_array_equal(now, e.action[k - 1])


def test_a_command_stamped_at_a_grid_instant_is_in_force_from_it_not_before():
    """Under sim time a command is stamped with the instant it answers (t = 0.04, exactly a state's stamp);
    the grid times are computed (0.1 - 3 * 0.02 = 0.04000000000000001): the command still belongs to the
    step that starts there, online and offline."""
    dt, H = 0.02, 4
    t = [round(i * dt, 6) for i in range(8)]
    q = np.array([[0.01 * i, -0.01 * i] for i in range(8)])
    cmds = {ti: np.array([1.0 + i, 2.0 + i]) for i, ti in enumerate(t)}
    online = ControlHistory(dt, H, N)
    for ti, qi in zip(t, q):
        online.add_state(ti, qi, np.zeros(N))
        online.add_command(ti, cmds[ti])
    states, acts, now = online.window(0.1)
    assert 0.1 - 3 * dt != 0.04  # the float error the rule is for
    np.testing.assert_allclose(states[:, :N], q[2:6], atol=1e-12)
    np.testing.assert_array_equal(acts, [cmds[0.04], cmds[0.06], cmds[0.08]])  # over 0.04-0.06, 0.06-0.08, ...
    np.testing.assert_array_equal(now, cmds[0.08])  # in force over the step ending at 0.1
    grid = 0.02 + dt * np.arange(4)
    a = align_grid(grid, dt, *sort_stream(t, q, np.zeros((8, N))), *sort_stream(list(cmds), list(cmds.values())))
    np.testing.assert_array_equal(a.action, [cmds[0.02], cmds[0.04], cmds[0.06], cmds[0.08]])
    assert a.commanded.all()
    # a command received more than TIME_EPS before a step's end is in force over that step
    c = align_grid(grid, dt, *sort_stream(t, q, np.zeros((8, N))), np.array([0.04 - 2 * TIME_EPS]), np.ones((1, N)))
    assert c.commanded.tolist() == [True, True, True, True]


def test_before_any_command_the_window_holds_the_measured_position_within_the_limits():
    dt, H = 0.02, 3
    online = ControlHistory(dt, H, N)
    for i in range(6):
        online.add_state(i * dt, np.array([0.5 * i, -0.1]), np.full(N, np.nan))  # velocities not reported
    online.add_command(4 * dt + 1e-3, np.array([9.0, 9.0]))
    lim = {"lo": np.array([-1.0, -1.0]), "hi": np.array([1.2, 1.0])}
    states, acts, now = online.window(4 * dt, **lim)  # steps 0.04-0.06, 0.06-0.08: no command yet
    np.testing.assert_allclose(states[:, 0], [1.0, 1.5, 2.0])
    assert np.isnan(states[:, N:]).all()  # the aligner passes NaN through; the node zeroes it, as training does
    np.testing.assert_allclose(acts, [[1.0, -0.1], [1.2, -0.1]])  # where it was at each step's start, clipped
    np.testing.assert_allclose(now, [1.2, -0.1])  # where it is at t, clipped
    states, acts, now = online.window(5 * dt, **lim)
    np.testing.assert_allclose(acts, [[1.2, -0.1], [9.0, 9.0]])  # the command from 0.081 on
    np.testing.assert_array_equal(now, [9.0, 9.0])


def test_the_history_keeps_what_the_window_needs_and_forgets_the_rest():
    dt, H = 0.02, 3
    online = ControlHistory(dt, H, N, keep=0.1)
    full = ControlHistory(dt, H, N, keep=math.inf)
    for i in range(200):
        for h in (online, full):
            h.add_state(i * 0.005, np.array([math.sin(i / 7), i * 1e-3]), np.zeros(N))
            if i % 40 == 0:  # a command every 0.2 s: the one in force is older than what is kept
                h.add_command(i * 0.005 + 1e-4, np.array([i, -i], float))
    assert len(online.states.t) < 25 and len(online.commands.t) == 2 < len(full.commands.t)  # each by its newest
    for a, b in zip(online.window(199 * 0.005), full.window(199 * 0.005)):
        np.testing.assert_array_equal(a, b)
    online.add_state(0.501, np.ones(N), np.zeros(N))  # late, older than what is kept: no effect on the window
    np.testing.assert_array_equal(online.window(199 * 0.005)[0], full.window(199 * 0.005)[0])


def test_a_repeated_stamp_keeps_the_last_received_online_and_offline():
    """Two states with one stamp and other values (hypothesis found the online window taking the first
    and the recording the last, once trimming had dropped part of the run): the last received stands."""
    t, q = sort_stream([0.0, 1.0, 1.0, 2.0], np.array([[0.0], [0.0], [0.1], [0.0]]))
    assert t.tolist() == [0.0, 1.0, 2.0] and q[:, 0].tolist() == [0.0, 0.1, 0.0]
    h = ControlHistory(0.5, 1, 1, keep=0.1)  # a short memory: trimming runs on every sample
    for ts, v in [(0.0, 0.0), (1.0, 0.0), (1.0, 0.1), (2.0, 0.0)]:
        h.add_state(ts, np.array([v]), np.array([0.0]))
    assert h.states.t == [1.0, 2.0]
    states, _, _ = h.window(1.0)
    assert states[0, 0] == 0.1
