"""Run-time decisions: numpy (+ ONNX Runtime through ``world/``), no messages, no ROS.

``limits`` (the one clamp kernel), ``safety`` (the safety layer on it), ``arbitration`` (which source
commands and whether a plan may be followed, as pure functions), ``features``, ``kinematics``,
``urdf`` and ``planner``. Nothing here imports ``wm_control.ros`` (a test checks it).
"""
