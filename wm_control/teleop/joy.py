"""The gamepad: ``sensor_msgs/Joy`` axes -> joint velocities (deadzone, scale, sign), the deadman button."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def apply_deadzone(v: np.ndarray | float, deadzone: float) -> np.ndarray:
    """Zero inside ``deadzone``; outside it, rescaled so that the output still spans [-1, 1] continuously."""
    v = np.clip(np.asarray(v, dtype=np.float64), -1.0, 1.0)
    if deadzone <= 0:
        return v
    mag = np.abs(v)
    return np.where(mag <= deadzone, 0.0, np.sign(v) * (mag - deadzone) / (1.0 - deadzone))


def button(buttons: Sequence[int], index: int) -> bool:
    """Whether Joy button ``index`` is pressed (False for -1 or a button the message does not have)."""
    return 0 <= index < len(buttons) and bool(buttons[index])


@dataclass
class JoyMapping:
    """``sensor_msgs/Joy`` -> joint velocities (rad/s), gated by a deadman button.

    ``axes[i]`` is the Joy axis driving joint i (-1: none; joints beyond the list: none); ``scale[i]`` the
    velocity at full deflection (one value: every joint; a negative value flips the direction).
    """

    n_joints: int
    axes: list[int] = field(default_factory=lambda: [0, 1, 3, 4])
    scale: list[float] = field(default_factory=lambda: [0.5])
    deadzone: float = 0.1
    enable_button: int = 4
    require_enable: bool = True
    estop_button: int = -1
    reset_button: int = -1

    def __post_init__(self) -> None:
        if self.n_joints < 1:
            raise ValueError("JoyMapping needs at least one joint")
        if not 0 <= self.deadzone < 1:
            raise ValueError(f"deadzone must be in [0, 1), got {self.deadzone}")
        if self.require_enable and self.enable_button < 0:
            raise ValueError("require_enable needs an enable_button >= 0 (the deadman button)")
        if any(a < -1 for a in self.axes):
            raise ValueError(f"axis_map entries must be >= 0 (or -1 for none), got {self.axes}")
        if len(self.scale) not in (1,) and len(self.scale) < self.n_joints:
            raise ValueError(f"scale needs 1 value or one per joint ({self.n_joints}), got {len(self.scale)}")
        if not all(math.isfinite(s) for s in self.scale):
            raise ValueError(f"scale must be finite, got {self.scale}")
        if all(a < 0 for a in self.axes[: self.n_joints]):
            raise ValueError(f"axis_map {self.axes} maps no axis to any of the {self.n_joints} joints")
        self._scale = np.array(self.scale * self.n_joints if len(self.scale) == 1 else self.scale[: self.n_joints],
                               dtype=np.float64)
        self._axes = [self.axes[i] if i < len(self.axes) else -1 for i in range(self.n_joints)]

    @property
    def joint_axes(self) -> list[int]:
        return list(self._axes)

    @property
    def joint_scales(self) -> np.ndarray:
        return self._scale.copy()

    def enabled(self, buttons: Sequence[int]) -> bool:
        """The deadman: motion only while the enable button is held (or always when not required)."""
        return (not self.require_enable) or button(buttons, self.enable_button)

    def estop_pressed(self, buttons: Sequence[int]) -> bool:
        return button(buttons, self.estop_button)

    def reset_pressed(self, buttons: Sequence[int]) -> bool:
        return button(buttons, self.reset_button)

    def velocity(self, axes: Sequence[float]) -> np.ndarray:
        """Joint velocities (rad/s) for these axis values; ValueError for a message that does not fit."""
        a = np.asarray(axes, dtype=np.float64)
        need = max(self._axes) + 1
        if a.size < need:
            raise ValueError(f"Joy message has {a.size} axes but axis_map uses axis {need - 1}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Joy message has non-finite axes {a.tolist()}")
        raw = np.array([a[k] if k >= 0 else 0.0 for k in self._axes])
        return apply_deadzone(raw, self.deadzone) * self._scale
