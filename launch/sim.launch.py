"""Start the graph described by a wm_control params YAML on a ROS 2 machine (launch_ros).

    ros2 launch wm_control sim.launch.py params_file:=/path/to/demo.yaml

The YAML is the same file `wm-control launch` reads: every node section starts one node (its
executable is the section name, or the `node_type` parameter), and the file is passed to every
node as its params file.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context, *args, **kwargs):
    params_file = LaunchConfiguration("params_file").perform(context)
    with open(params_file) as f:
        graph = yaml.safe_load(f)
    actions = []
    for key, section in graph.items():
        if "*" in str(key):
            continue
        params = (section or {}).get("ros__parameters") or {}
        namespace, _, name = str(key).rpartition("/")
        actions.append(Node(
            package="wm_control",
            executable=params.get("node_type", name),
            name=name,
            namespace=namespace or None,
            parameters=[params_file],
            output="screen",
            emulate_tty=True,
        ))
    return actions


def generate_launch_description():
    default = os.path.join(get_package_share_directory("wm_control"), "config", "expert.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default,
                              description="wm_control params YAML (also the graph)"),
        OpaqueFunction(function=_nodes),
    ])
