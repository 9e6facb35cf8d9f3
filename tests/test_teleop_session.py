"""The teleop session's state machine (wm_control.teleop.session), driven by hand-built inputs and explicit
times: no DDS, no sleeps, no terminal. Each test follows one transition and the effects the node must carry out."""

import numpy as np
import pytest

from wm_control.teleop.joy import JoyMapping
from wm_control.teleop.keys import ESC, KeyMap
from wm_control.teleop.session import RESET_DELAY, TeleopSession
from wm_control.teleop.target import TargetIntegrator

Q = np.array([0.1, -0.2])
DT = 1.0 / 50.0
DEADMAN, ESTOP, RESET = 4, 1, 2  # the Joy buttons of these tests


def make(keyboard=True, joy=False, measured=True):
    joy_map = JoyMapping(2, axes=[0, 1], scale=[1.0], deadzone=0.0, enable_button=DEADMAN, estop_button=ESTOP,
                         reset_button=RESET) if joy else None
    s = TeleopSession(KeyMap(), key_step=0.05, rate=50.0, joy_timeout=0.5, keyboard=keyboard,
                      integrator=TargetIntegrator(2, max_lead=0.3), joy_map=joy_map)
    if measured:
        s.integrator.measure(Q)
    return s


def buttons(*pressed):
    return [int(i in pressed) for i in range(8)]


def kinds(fx):
    return [k for k, _ in fx]


def command(fx):
    """The one command among the effects (None: nothing commanded)."""
    cmds = [v for k, v in fx if k == "command"]
    assert len(cmds) <= 1
    return cmds[0] if cmds else None


# ------------------------------------------------------------------------------------------
# Keyboard
# ------------------------------------------------------------------------------------------
def test_nothing_moves_or_is_published_before_a_joint_state():
    s = make(measured=False)
    assert s.key("q", 0.0) == [] and s.integrator.target is None
    assert command(s.tick(0.0)) is None
    assert s.status() == (True, "waiting for /joint_states")
    s.integrator.measure(Q)
    assert np.allclose(command(s.tick(0.02)), Q)  # the held target starts at the measured position
    assert s.status() == (False, "teleop (keyboard)")


def test_keys_step_the_held_target_at_the_speed():
    s = make()
    s.tick(0.0)
    for k in "qqq":
        s.key(k, 0.0)
    assert np.allclose(command(s.tick(0.02)), [0.25, -0.2])
    (kind, text), = s.key("+", 0.03)
    assert kind == "info" and text.startswith("speed x1.50 (key step 0.075 rad")
    s.key("a", 0.03)
    assert np.allclose(command(s.tick(0.04)), [0.175, -0.2])
    for _ in range(20):
        s.key("+", 0.05)
    assert s.speed == 16
    for _ in range(40):
        s.key("-", 0.05)
    assert s.speed == 1 / 16


def test_held_target_stays_within_max_lead_of_the_measured_position():
    s = make()
    for _ in range(10):
        s.key("q", 0.0)  # 0.5 rad asked for
    assert np.allclose(command(s.tick(0.0)), [0.4, -0.2])  # 0.1 + max_lead
    s.integrator.measure(np.array([0.0, -0.2]))  # the robot fell back
    assert np.allclose(command(s.tick(0.02)), [0.3, -0.2])  # re-clamped around it, no wind-up


def test_without_a_keyboard_joint_keys_do_nothing_and_nothing_is_held():
    s = make(keyboard=False)
    s.key("q", 0.0)
    assert command(s.tick(0.0)) is None
    assert np.allclose(s.integrator.target, Q)  # the key did not step it
    assert s.status() == (False, "teleop (idle)")


def test_quit_key():
    assert make().key(ESC, 0.0) == [("info", "quit key: stopping"), ("quit", None)]


# ------------------------------------------------------------------------------------------
# Mode
# ------------------------------------------------------------------------------------------
def test_mode_key_toggles_hold_and_teleop_and_restarts_from_measured():
    s = make()
    s.key("q", 0.0)
    assert s.key("m", 0.0) == [("mode", "hold"), ("info", "mode -> hold")]
    assert s.mode == "hold" and command(s.tick(0.02)) is None
    assert s.status() == (False, "mode hold: not commanding")
    s.key("q", 0.03)  # ignored in hold
    assert s.key("m", 0.04) == [("mode", "teleop"), ("info", "mode -> teleop")]
    assert np.allclose(command(s.tick(0.06)), Q)  # the step taken before hold is gone


def test_set_mode_publishes_always_and_logs_only_a_change():
    s = make()
    assert s.set_mode("teleop") == [("mode", "teleop")]
    assert s.set_mode("hold") == [("mode", "hold"), ("info", "mode -> hold")]


def test_mode_from_the_topic():
    s = make()
    assert s.on_mode(" HOLD ") == [("info", "mode is now hold")] and s.mode == "hold"
    assert s.on_mode("hold") == []  # no change
    assert s.on_mode("dance") == [] and s.mode == "hold"  # unknown: ignored
    assert command(s.tick(0.0)) is None
    s.on_mode("autonomous")
    assert command(s.tick(0.02)) is None and s.status() == (False, "mode autonomous: not commanding")
    s.on_mode("teleop")
    assert np.allclose(command(s.tick(0.04)), Q)


# ------------------------------------------------------------------------------------------
# E-stop
# ------------------------------------------------------------------------------------------
def test_estop_key_latches_and_stops_commanding():
    s = make()
    s.key("q", 0.0)
    fx = s.key(" ", 0.0)
    assert fx == [("estop", True), ("error", "E-STOP (key): the policy node holds until it is cleared")]
    assert s.estop and command(s.tick(0.02)) is None
    assert s.status() == (True, "e-stop latched") and "E-STOP" in s.status_line(0.02)
    s.key("q", 0.03)
    assert command(s.tick(1.0)) is None  # still latched, however long


def test_clear_sends_false_then_the_reset_once_after_the_delay_and_unlatches_only_on_the_topic():
    s = make()
    s.key(" ", 0.0)
    s.on_estop(True)  # our own true, back from the latched topic
    assert s.key("c", 1.0) == [("estop", False), ("info", "clearing the e-stop (key)")]
    assert s.estop  # not cleared here until /wm/estop says so
    assert "reset" not in kinds(s.tick(1.0 + RESET_DELAY / 2))
    fx = s.tick(1.0 + RESET_DELAY)
    assert kinds(fx) == ["reset"] and command(fx) is None  # still latched: nothing commanded yet
    assert "reset" not in kinds(s.tick(2.0))  # once
    s.key("q", 2.0)
    s.on_estop(False)
    assert not s.estop and np.allclose(command(s.tick(2.02)), Q)  # from the measured position


def test_estop_press_cancels_a_pending_reset():
    s = make()
    s.key(" ", 0.0)
    s.key("c", 1.0)
    s.key(" ", 1.1)  # pressed again before the reset went out
    assert "reset" not in kinds(s.tick(1.0 + RESET_DELAY)) + kinds(s.tick(5.0))


def test_estop_from_another_source_stops_and_its_clear_restarts_from_measured():
    s = make()
    s.key("q", 0.0)
    assert np.allclose(command(s.tick(0.0)), [0.15, -0.2])
    s.on_estop(True)
    assert command(s.tick(0.02)) is None
    s.on_estop(False)
    assert np.allclose(command(s.tick(0.04)), Q)
    s.key("q", 0.05)
    s.on_estop(True)
    s.on_estop(False)  # a true and its clear between two ticks still restart from the measured position
    assert np.allclose(command(s.tick(0.06)), Q)


def test_a_due_reset_goes_out_before_this_ticks_keys():
    s = make()
    s.key("c", 0.0)
    assert kinds(s.tick(1.0, keys=["m", " "])) == ["reset", "mode", "info", "estop", "error"]


# ------------------------------------------------------------------------------------------
# Joy: deadman, staleness, buttons
# ------------------------------------------------------------------------------------------
def test_joy_moves_only_while_the_deadman_is_held():
    s = make(keyboard=False, joy=True)
    s.on_joy([1.0, 0.0], buttons(), 0.0)  # stick pushed, deadman released
    assert command(s.tick(0.0)) is None and not s.joy_enabled(0.0)
    assert s.status_line(0.0) == "TELEOP  speed x1.00  joy off"
    s.on_joy([1.0, 0.0], buttons(DEADMAN), 0.02)
    assert np.allclose(command(s.tick(0.02)), Q + [DT, 0.0])
    assert np.allclose(command(s.tick(0.04)), Q + [2 * DT, 0.0])
    assert s.status() == (False, "teleop (joy)") and s.status_line(0.04).endswith("joy ON")
    s.on_joy([1.0, 0.0], buttons(), 0.06)  # released: nothing more
    assert command(s.tick(0.06)) is None and s.status() == (False, "teleop (idle)")


def test_joy_is_released_when_its_messages_stop():
    s = make(keyboard=False, joy=True)
    s.on_joy([0.5, 0.0], buttons(DEADMAN), 0.0)
    assert command(s.tick(0.5)) is not None  # 0.5 s old: joy_timeout, still fresh
    assert command(s.tick(0.51)) is None and not s.joy_enabled(0.51)


def test_a_new_deadman_press_starts_from_where_the_robot_is():
    s = make(keyboard=False, joy=True)
    s.on_joy([1.0, 0.0], buttons(DEADMAN), 0.0)
    for i in range(5):
        s.tick(i * DT)
    assert np.allclose(s.integrator.target, Q + [5 * DT, 0.0])
    s.on_joy([1.0, 0.0], buttons(), 0.1)
    s.tick(0.1)
    lag = np.array([0.12, -0.2])
    s.integrator.measure(lag)  # the robot got only this far
    s.on_joy([1.0, 0.0], buttons(DEADMAN), 0.2)
    assert np.allclose(command(s.tick(0.2)), lag + [DT, 0.0])  # not the old target + DT


def test_joy_speed_scales_the_velocity():
    s = make(keyboard=False, joy=True)
    s.key("+", 0.0)
    s.on_joy([0.0, -1.0], buttons(DEADMAN), 0.0)
    assert np.allclose(command(s.tick(0.0)), Q + [0.0, -1.5 * DT])


def test_a_joy_message_that_does_not_fit_is_dropped_and_the_target_held():
    s = make(keyboard=False, joy=True)
    s.on_joy([1.0], buttons(DEADMAN), 0.0)  # axis 1 is mapped, the message has one axis
    fx = s.tick(0.0)
    assert kinds(fx) == ["dropped", "command"] and fx[0][1][0] == "joy" and "1 axes" in fx[0][1][1]
    assert np.allclose(command(fx), Q)


def test_joy_estop_and_reset_buttons_act_on_the_press_not_while_held():
    s = make(keyboard=False, joy=True)
    fx = s.on_joy([0.0, 0.0], buttons(ESTOP), 0.0)
    assert fx == [("estop", True), ("error", "E-STOP (joy button): the policy node holds until it is cleared")]
    assert s.on_joy([0.0, 0.0], buttons(ESTOP), 0.02) == []  # still held: once
    assert kinds(s.on_joy([0.0, 0.0], buttons(), 0.04)) == []
    assert kinds(s.on_joy([0.0, 0.0], buttons(ESTOP), 0.06)) == ["estop", "error"]  # pressed again
    assert s.on_joy([0.0, 0.0], buttons(RESET), 1.0) == [("estop", False), ("info", "clearing the e-stop (joy button)")]
    assert kinds(s.tick(1.0 + RESET_DELAY)) == ["reset"]


def test_joy_buttons_before_the_joints_are_known_are_not_edges_yet():
    s = make(keyboard=False, joy=True)
    joy_map, s.joy_map = s.joy_map, None
    assert s.on_joy([0.0, 0.0], buttons(ESTOP), 0.0) == []  # no mapping yet
    s.joy_map = joy_map
    assert kinds(s.on_joy([0.0, 0.0], buttons(ESTOP), 0.02)) == ["estop", "error"]  # its first edge


def test_without_a_gamepad_the_status_line_has_no_joy():
    assert make().status_line(0.0) == "TELEOP  speed x1.00"


@pytest.mark.parametrize("key", ["q", "m", " ", "c", "+"])
def test_keys_before_the_joints_are_known_command_nothing(key):
    s = TeleopSession(KeyMap(), keyboard=True)  # no integrator yet
    s.key(key, 0.0)
    assert "command" not in kinds(s.tick(0.0)) and s.status() == (True, "waiting for /joint_states")
