"""The simulated robots by name, and what the rest of the code may ask about them without MuJoCo.

Everything outside :mod:`wm_control.sim` that needs a simulated robot (the default of a verb's
``--robot``, the length of its episodes, whether its scripted expert can run from robot topics alone)
asks here, so that no module outside the simulator names one. A real robot is a YAML in
``config/robots/`` (:mod:`wm_control.robot`), not an entry here.
"""

from __future__ import annotations

#: the simulated robots (:class:`wm_control.sim.arm.SimArm`)
ROBOTS: tuple[str, ...] = ("reacher", "pusher", "panda")
#: the robot the demo, the evaluations and every training default run
DEFAULT_ROBOT = "reacher"
#: dimensions of the goal the task measures: the planar tasks in the table's xy, the panda in xyz
GOAL_DIMS = {"reacher": 2, "pusher": 2, "panda": 3}
#: seconds per collected episode
EPISODE_S = {"reacher": 2.0, "pusher": 5.0, "panda": 3.0}
#: robots whose scripted expert needs an object's pose, which no robot topic carries (the simulator's
#: ground-truth topic does: the expert is a demonstrator, never part of the learned stack)
EXPERT_NEEDS_OBJECT = frozenset({"pusher"})
#: how an evaluation's episode starts (sim_robot ``episode_reset``): 'goal' (a new goal, the arm where it is) or
#: 'full' (the arm at rest, the object and goal drawn anew: how the pusher's data are collected)
EPISODE_RESET = {"pusher": "full"}
#: success: the tip (reacher, panda) or the object's centre (pusher) this close to the goal at the end (m)
SUCCESS_RADIUS = {"reacher": 0.02, "pusher": 0.05, "panda": 0.02}

#: the behaviour of each data quality ``collect --quality`` names (the scripted expert's noise in rad per
#: step, its gain, and the goals it is given: 'half' = one side of the goal region only). 'mixed' is half
#: of each, alternating. Measured on the pusher (clean expert 96% within 5 cm over 50 episodes):
#: 'expert' ~95%, 'low' ~15%.
DATA_QUALITY = {
    "pusher": {"expert": {"noise": 0.05, "gain": 1.0, "goal_region": "full"},
               "low": {"noise": 0.15, "gain": 0.5, "goal_region": "half"}},
}


def success_radius(robot: str, default: float = 0.02) -> float:
    return SUCCESS_RADIUS.get(robot, default)


def episode_s(robot: str, default: float = 2.0) -> float:
    return EPISODE_S.get(robot, default)


def episode_reset(robot: str) -> str:
    return EPISODE_RESET.get(robot, "goal")


def check_robot(robot: str) -> str:
    if robot not in ROBOTS:
        raise ValueError(f"unknown simulated robot {robot!r}; choose one of {list(ROBOTS)} "
                         f"(a real robot is a config in config/robots/: --robot-config)")
    return robot


__all__ = ["DATA_QUALITY", "DEFAULT_ROBOT", "EPISODE_RESET", "EPISODE_S", "EXPERT_NEEDS_OBJECT", "GOAL_DIMS", "ROBOTS",
           "SUCCESS_RADIUS", "check_robot", "episode_reset", "episode_s", "success_radius"]
