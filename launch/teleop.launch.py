"""Teleoperation on a ROS 2 machine: the wm_control teleop node, and joy_node when the `joy` package is there.

    ros2 launch wm_control teleop.launch.py                               # gamepad + keyboard, config/teleop.yaml
    ros2 launch wm_control teleop.launch.py input:=keyboard terminal:="xterm -e"
    ros2 launch wm_control teleop.launch.py params_file:=/path/to/my.yaml view:=mjpeg

The robot side (the robot's own bringup, or sim.launch.py with params_file:=config/teleop.yaml minus its
teleop section) runs the policy node: teleop only publishes /teleop/command and /wm/mode, and every command
passes the policy's safety layer. The teleop node reads its parameters from the `teleop:` section of
params_file; `input` and `view` override them when given.

ros2 launch does not hand a node the terminal's keyboard: for keyboard input give `terminal:="xterm -e"`
(the node runs in its own terminal window), or run `ros2 run wm_control teleop` / `wm-control teleop`.
"""

import os  # noqa: I001 (ruff counts the launch/ folder as first-party; the ROS launch package is not)

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from wm_control.ros.bringup import section_remappings


def _nodes(context, *args, **kwargs):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    params = [arg("params_file")]
    overrides = {k: arg(k) for k in ("input", "view") if arg(k)}
    if overrides:
        params.append(overrides)
    actions = [Node(
        package="wm_control",
        executable="teleop",
        name="teleop",
        parameters=params,
        remappings=section_remappings(params[0], "teleop"),  # its section's launch: remappings, as wm-control launch
        output="screen",
        emulate_tty=True,
        prefix=arg("terminal") or None,
    )]
    if arg("use_joy").lower() in ("true", "1", "yes"):
        try:
            get_package_share_directory("joy")
        except PackageNotFoundError:
            actions.append(LogInfo(msg="package 'joy' not found: no joy_node (apt install ros-$ROS_DISTRO-joy); "
                                       "publish sensor_msgs/Joy on /joy yourself or use the keyboard"))
        else:
            actions.append(Node(
                package="joy",
                executable="joy_node",
                name="joy_node",
                parameters=[{"device_id": int(arg("joy_device")), "deadzone": 0.05, "autorepeat_rate": 20.0}],
                output="screen",
            ))
    return actions


def generate_launch_description():
    default = os.path.join(get_package_share_directory("wm_control"), "config", "teleop.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default,
                              description="wm_control params YAML with a teleop: section"),
        DeclareLaunchArgument("input", default_value="", description="keyboard | joy | both (default: the YAML's)"),
        DeclareLaunchArgument("view", default_value="",
                              description="auto | window | topic | mjpeg | none (default: the YAML's)"),
        DeclareLaunchArgument("use_joy", default_value="true", description="start joy_node when `joy` is installed"),
        DeclareLaunchArgument("joy_device", default_value="0", description="joy_node device_id"),
        DeclareLaunchArgument("terminal", default_value="",
                              description='prefix for the teleop node, e.g. "xterm -e", for keyboard input'),
        OpaqueFunction(function=_nodes),
    ])
