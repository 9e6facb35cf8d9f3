"""Start the graph described by a wm_control params YAML on a ROS 2 machine (launch_ros).

    ros2 launch wm_control sim.launch.py params_file:=/path/to/demo.yaml

The YAML is the same file `wm-control launch` reads, read by the same code
(wm_control.ros.bringup.graph_nodes): every node section starts one node (its executable is the section
name, or the `node_type` parameter), the file is passed to every node as its params file, and a section's
`launch:` attributes apply: `remappings` (`from:=to`, as launch_ros remappings), `required` (its exit
shuts the launch down), `respawn` / `respawn_delay`.
"""

import os  # noqa: I001 (ruff counts the launch/ folder as first-party; the ROS launch package is not)

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from wm_control.ros.bringup import graph_nodes, launch_actions


def _nodes(context, *args, **kwargs):
    return launch_actions(graph_nodes(LaunchConfiguration("params_file").perform(context)), Node, Shutdown)


def generate_launch_description():
    default = os.path.join(get_package_share_directory("wm_control"), "config", "expert.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default,
                              description="wm_control params YAML (also the graph)"),
        OpaqueFunction(function=_nodes),
    ])
