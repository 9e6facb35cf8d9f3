"""Pure MuJoCo simulated arms (no ROS) and data-collection policies."""

from .arm import ArmConfig, Observation, SimArm
from .policies import ExpertPolicy, RandomPolicy, make_policy

__all__ = ["ArmConfig", "ExpertPolicy", "Observation", "RandomPolicy", "SimArm", "make_policy"]
