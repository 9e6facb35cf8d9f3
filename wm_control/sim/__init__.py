"""Pure MuJoCo simulated arms (no ROS) and data-collection policies.

MuJoCo is imported on first use of :class:`SimArm` and friends, so :mod:`wm_control.sim.robots` (the
robot names and their constants) costs nothing to import.
"""

from __future__ import annotations

from typing import Any

from wm_control.sim.robots import DEFAULT_ROBOT, ROBOTS

_LAZY = {"ArmConfig": "arm", "Observation": "arm", "SimArm": "arm",
         "ExpertPolicy": "policies", "RandomPolicy": "policies", "make_policy": "policies"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"wm_control.sim.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'wm_control.sim' has no attribute {name!r}")


__all__ = ["DEFAULT_ROBOT", "ROBOTS", *_LAZY]
