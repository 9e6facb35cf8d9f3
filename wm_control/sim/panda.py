"""The Franka Emika Panda scene: the arm shipped with ``gymnasium-robotics``, on a table.

The scene is an MJCF of our own, generated here (so it needs no package data), that includes the
Franka chain, assets and actuators from the installed ``gymnasium_robotics`` package by absolute
path; nothing is downloaded. Added around it: a table, a fixed workspace camera, a mocap goal body
with a marker site, one light without shadows and a floor without reflections (Mesa renders those
very slowly), and a ``tcp`` frame body at the hand's ``end_effector`` site (between the finger pads).

The shipped arm actuators are position servos; :func:`panda_model` turns the seven arm actuators into
torque motors limited to their ``forcerange`` (87 N m on joints 1-4, 12 N m on 5-7, as on the real
robot) so that :class:`~wm_control.sim.arm.SimArm` runs its own PD loop, and it compensates gravity
through the actuators (``gravcomp``), as the Franka controller does on the real arm. The finger
servos are kept as shipped and hold the fingers open.
"""

from __future__ import annotations

import importlib.util
import os

import mujoco
import numpy as np

#: joint position gains of the shipped position actuators (N m / rad), used as the PD ``kp``
KP = (870.0, 870.0, 870.0, 870.0, 120.0, 120.0, 120.0)
#: joint velocity limits of the real arm (rad/s; Franka's datasheet), written into its URDF
MAX_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
#: PD ``kd`` (N m s / rad) on top of the model's own joint damping (100 on joints 1-4, 10 on 5-7),
#: which MuJoCo integrates implicitly: kd*dt/I must stay well below 2 on the light wrist joints
KD = (20.0, 20.0, 10.0, 10.0, 1.0, 1.0, 0.5)
#: the Franka "ready" pose (hand pointing down, 0.49 m above the table); the shipped joint 6 frame is
#: the original's turned by -pi/2, so its ready angle is 0 here, not pi/2. Resets are near it.
HOME = (0.0, -0.785, 0.0, -2.356, 0.0, 0.0, 0.785)
#: finger opening held by the finger servos (m per finger, the range is 0..0.04)
FINGER_OPENING = 0.03
#: reachable 3-D goal box above the table (world m: x0, y0, z0, x1, y1, z1); the base is at the origin
#: on the table top (z = 0)
GOAL_BOX = (0.3, -0.3, 0.1, 0.65, 0.3, 0.5)
#: workspace camera: eye and look-at points (world m)
CAMERA_EYE, CAMERA_LOOKAT = (1.25, -0.85, 0.85), (0.3, 0.0, 0.3)
TIP_BODY, GOAL_BODY = "tcp", "goal"


def franka_asset_dir() -> str:
    """The Franka assets inside the installed ``gymnasium_robotics`` package."""
    spec = importlib.util.find_spec("gymnasium_robotics")  # located, not imported (it prints on import)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("robot 'panda' needs the gymnasium-robotics package (pip install gymnasium-robotics)")
    d = os.path.join(spec.submodule_search_locations[0], "envs", "assets", "kitchen_franka", "franka_assets")
    for f in ("chain.xml", "assets.xml", "actuator.xml"):
        if not os.path.exists(os.path.join(d, f)):
            raise FileNotFoundError(f"no {f} in {d}")
    return d


def _xyaxes(eye: tuple[float, ...], lookat: tuple[float, ...]) -> str:
    z = np.subtract(eye, lookat)
    z = z / np.linalg.norm(z)  # the camera looks along -z
    x = np.cross([0.0, 0.0, 1.0], z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return " ".join(f"{v:.6f}" for v in (*x, *y))


def scene_xml(fast_render: bool = True) -> str:
    """The scene's MJCF text. ``fast_render=False`` adds a shadow-casting light and a reflective
    floor (for measuring what they cost)."""
    d = franka_asset_dir()
    shadow = "false" if fast_render else "true"
    reflect = 0.0 if fast_render else 0.3
    x0, y0, z0, x1, y1, z1 = GOAL_BOX
    return f"""<mujoco model="wm_control_panda">
  <include file="{d}/assets.xml"/>
  <compiler angle="radian" meshdir="{d}/meshes" autolimits="true"/>
  <visual>
    <quality shadowsize="{0 if fast_render else 2048}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <material name="floor" rgba="0.45 0.47 0.5 1" reflectance="{reflect}"/>
    <material name="table" rgba="0.55 0.42 0.3 1" reflectance="0"/>
  </asset>
  <include file="{d}/actuator.xml"/>
  <worldbody>
    <light name="top" pos="0.4 0 2.5" dir="0 0 -1" directional="true" castshadow="{shadow}"
           diffuse="0.6 0.6 0.6" specular="0 0 0"/>
    <geom name="floor" type="plane" size="3 3 0.05" pos="0 0 -0.75" material="floor"/>
    <geom name="table" type="box" size="0.6 0.75 0.025" pos="0.35 0 -0.025" material="table"/>
    <geom name="table_leg" type="box" size="0.05 0.05 0.35" pos="0.35 0 -0.4" material="table"
          contype="0" conaffinity="0"/>
    <camera name="workspace" pos="{' '.join(map(str, CAMERA_EYE))}"
            xyaxes="{_xyaxes(CAMERA_EYE, CAMERA_LOOKAT)}" fovy="50"/>
    <body name="{GOAL_BODY}" mocap="true" pos="{(x0 + x1) / 2} {(y0 + y1) / 2} {(z0 + z1) / 2}">
      <site name="goal" type="sphere" size="0.025" rgba="0.95 0.15 0.1 1"/>
    </body>
    <body name="panda0_base" pos="0 0 0">
      <include file="{d}/chain.xml"/>
    </body>
  </worldbody>
</mujoco>
"""


def panda_model(fast_render: bool = True, fine_meshes: bool = False) -> mujoco.MjModel:
    """Compile the scene: arm actuators as gravity-compensated torque motors, a ``tcp`` body.

    Unless ``fine_meshes``, the arm's visual geoms are drawn with its collision meshes (2.3k
    triangles instead of 133k: Mesa rasterises in software, and a 96x96 frame cannot show the
    difference) and the fine meshes are not loaded.
    """
    spec = mujoco.MjSpec.from_string(scene_xml(fast_render))
    if not fine_meshes:
        for geom in spec.geoms:
            if geom.meshname.endswith("_viz") and geom.meshname != "finger_viz":
                geom.meshname = geom.meshname[: -len("_viz")] + "_col"
        for mesh in list(spec.meshes):
            if mesh.name.endswith("_viz") and mesh.name != "finger_viz":
                spec.delete(mesh)
    ee = spec.site("end_effector")
    ee.parent.add_body(name=TIP_BODY, pos=ee.pos, quat=ee.quat)  # a massless frame welded to the hand
    for act in spec.actuators:
        joint = act.target
        if "finger" in joint:
            continue
        lo, hi = act.forcerange
        act.set_to_motor()
        act.gear[0] = 1.0
        act.ctrllimited, act.ctrlrange = True, [lo, hi]
        act.forcelimited, act.forcerange = True, [lo, hi]
        j = spec.joint(joint)  # gravity compensation goes through the actuators, within the same limits
        j.actgravcomp, j.actfrclimited, j.actfrcrange = True, True, [lo, hi]
    for body in spec.bodies:
        if body.name.startswith("panda0_") or body.name == TIP_BODY:
            body.gravcomp = 1.0
    return spec.compile()
