"""The operator's session as a pure state machine (no ROS, no threads, no clock: every input comes with ``now``,
monotonic s). Each input returns the effects the node carries out in order: ``("command", target)``,
``("mode", m)``, ``("estop", bool)``, ``("reset", None)`` (publish on /teleop/command, /wm/mode, /wm/estop,
/wm/estop_reset), ``("quit", None)``, ``("dropped", (what, text))`` (count, warn), ``("info" | "error", text)``.

The e-stop is /wm/estop as last seen from each of its sources (publishers): on while any source's newest
value is true. A press latches it here at once and cancels a pending reset; a clear publishes false and,
``RESET_DELAY`` s later, the reset, but only the topic's own false (of every source) unlatches it here.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from wm_control.teleop.joy import JoyMapping, button
from wm_control.teleop.keys import KeyMap, key_action
from wm_control.teleop.target import TargetIntegrator

MODES = ("autonomous", "teleop", "hold")
RESET_DELAY = 0.2  # s between /wm/estop false and /wm/estop_reset (different topics: keep them in order)
Effect = tuple[str, Any]


class TeleopSession:
    """``integrator`` and ``joy_map`` (None: no gamepad) are set once the joints are known; ``keyboard``: a
    keyboard drives, so joint keys move the target and the held target is published every tick. The target
    moves only in mode teleop without e-stop once a joint state was measured, and starts again from the
    measured positions after a mode or e-stop change, a reset, a new deadman press, or a tick it could not move."""

    def __init__(self, keymap: KeyMap, key_step: float = 0.05, rate: float = 50.0, joy_timeout: float = 0.5,
                 keyboard: bool = False, integrator: TargetIntegrator | None = None, joy_map: JoyMapping | None = None):
        self.keymap, self.key_step, self.dt, self.joy_timeout = keymap, key_step, 1.0 / rate, joy_timeout
        self.keyboard, self.integrator, self.joy_map = keyboard, integrator, joy_map
        self.mode, self.estop, self.speed = "teleop", False, 1.0  # mode: /wm/mode, ours or someone else's
        self.reset_at: float | None = None  # when /wm/estop_reset is due
        self.axes, self.buttons, self.joy_rx = (), [], -math.inf  # the last Joy message and its receive time
        self.edge_buttons: list[int] = []  # what the e-stop / reset button edges are seen against
        self.joy_was_enabled = False
        self.resync = True  # start the target again from the measured positions
        self.estop_sources: dict[str, bool] = {}  # /wm/estop source -> its newest value
        self._estop_stamps: dict[str, int] = {}  # source -> the newest source timestamp taken (ns)

    @property
    def measured(self) -> bool:
        return self.integrator is not None and self.integrator.measured is not None

    @property
    def can_move(self) -> bool:
        return self.measured and self.mode == "teleop" and not self.estop

    def joy_enabled(self, now: float) -> bool:
        """Joy is driving now: a message at most ``joy_timeout`` old with the deadman held."""
        return self.joy_map is not None and now - self.joy_rx <= self.joy_timeout and self.joy_map.enabled(self.buttons)

    def on_mode(self, data: str) -> list[Effect]:
        """/wm/mode as published (by anyone); an unknown mode is ignored."""
        mode = str(data).strip().lower()
        if mode not in MODES or mode == self.mode:
            return []
        self.mode, self.resync = mode, True
        return [("info", f"mode is now {mode}")]

    def on_estop(self, active: bool, source: str = "/wm/estop", stamp: int | None = None) -> None:
        """/wm/estop as published (by anyone): ``source`` (its publisher) now says ``active``. With a
        ``stamp`` (the sample's source timestamp), a sample not newer than the source's last one taken is
        ignored: the same sample heard on another reader, or a late retransmission."""
        if stamp is not None:
            if stamp <= self._estop_stamps.get(source, -1):
                return
            self._estop_stamps[source] = stamp
        self.estop_sources[source] = bool(active)
        was, self.estop = self.estop, any(self.estop_sources.values())
        self.resync = self.resync or bool(active) or self.estop != was

    def on_joy(self, axes: Sequence[float], buttons: Sequence[int], now: float) -> list[Effect]:
        self.axes, self.buttons, self.joy_rx = axes, list(buttons), now
        if self.joy_map is None:
            return []
        prev, self.edge_buttons = self.edge_buttons, self.buttons
        pressed = lambda i: button(self.buttons, i) and not button(prev, i)  # noqa: E731
        fx = self.trigger_estop("joy button") if pressed(self.joy_map.estop_button) else []
        return fx + (self.clear_estop("joy button", now) if pressed(self.joy_map.reset_button) else [])

    def key(self, key: str, now: float) -> list[Effect]:
        act = key_action(key, self.keymap, self.integrator.n if self.integrator is not None else 0)
        if act is None:
            return []
        if act.kind == "quit":
            return [("info", "quit key: stopping"), ("quit", None)]
        if act.kind == "estop":
            return self.trigger_estop("key")
        if act.kind == "reset":
            return self.clear_estop("key", now)
        if act.kind == "mode":
            return self.set_mode("hold" if self.mode == "teleop" else "teleop")
        if act.kind == "speed":
            self.speed = float(np.clip(self.speed * act.factor, 1 / 16, 16))
            joy = np.round(np.abs(self.joy_map.joint_scales) * self.speed, 3).tolist() if self.joy_map else "-"
            return [("info", f"speed x{self.speed:.2f} (key step {self.key_step * self.speed:.3f} rad, "
                             f"joy up to {joy} rad/s)")]
        if self.keyboard and self.can_move:  # a joint key
            self._resync()
            self.integrator.nudge(act.joint, act.sign * self.key_step * self.speed)
        return []

    def set_mode(self, mode: str) -> list[Effect]:
        fx: list[Effect] = [("mode", mode)] + ([("info", f"mode -> {mode}")] if mode != self.mode else [])
        self.mode, self.resync = mode, True
        return fx

    def trigger_estop(self, why: str) -> list[Effect]:
        self.estop, self.reset_at, self.resync = True, None, True
        return [("estop", True), ("error", f"E-STOP ({why}): the policy node holds until it is cleared")]

    def clear_estop(self, why: str, now: float) -> list[Effect]:
        self.reset_at = now + RESET_DELAY
        return [("estop", False), ("info", f"clearing the e-stop ({why})")]

    def _resync(self) -> None:
        if self.resync:
            self.integrator.reset()
            self.resync = False

    def tick(self, now: float, keys: Sequence[str] = ()) -> list[Effect]:
        """One period: a due reset, ``keys`` (the terminal's), then the target (moved while the deadman is held)."""
        fx: list[Effect] = []
        if self.reset_at is not None and now >= self.reset_at:
            fx.append(("reset", None))
            self.reset_at, self.resync = None, True
        for k in keys:
            fx += self.key(k, now)
        enabled = self.joy_enabled(now)
        if not self.can_move:
            self.joy_was_enabled, self.resync = False, True
            return fx
        self.resync = self.resync or (enabled and not self.joy_was_enabled)  # a new press starts from the robot
        self.joy_was_enabled = enabled
        self._resync()
        v = np.zeros(self.integrator.n)
        if enabled:
            try:
                v = self.joy_map.velocity(self.axes) * self.speed
            except ValueError as exc:
                fx.append(("dropped", ("joy", f"ignored Joy message: {exc}")))
        self.integrator.step(v, self.dt if enabled else 0.0)  # 0: re-clamp around the measured position
        return fx + ([("command", self.integrator.target.copy())] if enabled or self.keyboard else [])

    def status(self) -> tuple[bool, str]:
        """(warn, text) for /diagnostics."""
        if not self.measured:
            return True, "waiting for /joint_states"
        if self.estop:
            return True, "e-stop latched"
        if self.mode != "teleop":
            return False, f"mode {self.mode}: not commanding"
        return False, f"teleop ({'joy' if self.joy_was_enabled else 'keyboard' if self.keyboard else 'idle'})"

    def status_line(self, now: float) -> str:
        parts = [self.mode.upper()] + (["E-STOP"] if self.estop else []) + [f"speed x{self.speed:.2f}"]
        return "  ".join(parts + ([("joy ON" if self.joy_enabled(now) else "joy off")] if self.joy_map else []))
