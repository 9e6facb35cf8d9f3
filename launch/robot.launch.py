"""Bring up a physical robot on a ROS 2 machine: the policy node (and camera_ingest when the robot has a
camera) with the robot config's topics.

    ros2 launch wm_control robot.launch.py robot_config:=ur_style dry_run:=true     # commands on /wm/dry_run/*
    ros2 launch wm_control robot.launch.py robot_config:=ur_style                   # teleop/hold, to the controller
    ros2 launch wm_control robot.launch.py robot_config:=ur_style bundle:=/abs/bundles/arm_bc
    ros2 launch wm_control robot.launch.py robot_config:=my_arm.yaml controller:=/my_controller/joint_trajectory

Arguments: robot_config (a name in config/robots/ or a YAML path), bundle (optional: without one teleop and
hold only, starting in teleop), controller (the topic the robot's controller reads; default: the config's
command_topic), dry_run (true: every command computed as usual, published on /wm/dry_run/commands or
/wm/dry_run/joint_trajectory and never on the controller's topic), params_file (optional: a params YAML
whose policy: / camera_ingest: sections add parameters). The node list, parameters and remappings are
wm_control.ros.bringup.robot_nodes (unit-tested without ROS); this file only hands them to launch_ros.
"""

import os  # noqa: I001 (ruff counts the launch/ folder as first-party; the ROS launch package is not)

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from wm_control.ros.bringup import describe, launch_actions, robot_nodes


def _nodes(context, *args, **kwargs):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    robots = os.path.join(get_package_share_directory("wm_control"), "config", "robots")
    nodes = robot_nodes(arg("robot_config"), bundle=arg("bundle"), controller=arg("controller"),
                        dry_run=arg("dry_run"), params_file=arg("params_file"), robots_dir=robots)
    return [LogInfo(msg="wm_control robot bring-up: " + describe(nodes)), *launch_actions(nodes, Node, Shutdown)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot_config", description="robot config: a name in config/robots/ or a YAML path"),
        DeclareLaunchArgument("bundle", default_value="", description="model bundle folder; empty: teleop/hold only"),
        DeclareLaunchArgument("controller", default_value="",
                              description="the controller's command topic; empty: the robot config's command_topic"),
        DeclareLaunchArgument("dry_run", default_value="false",
                              description="true: commands on /wm/dry_run/*, never on the controller's topic"),
        DeclareLaunchArgument("params_file", default_value="", description="optional params YAML (policy: ...)"),
        OpaqueFunction(function=_nodes),
    ])
