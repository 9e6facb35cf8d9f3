"""Pure MuJoCo simulated arms (no ROS) and data-collection policies."""

from wm_control.sim.arm import ArmConfig, Observation, SimArm
from wm_control.sim.policies import ExpertPolicy, RandomPolicy, make_policy

__all__ = ["ArmConfig", "ExpertPolicy", "Observation", "RandomPolicy", "SimArm", "make_policy"]
