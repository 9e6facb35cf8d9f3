"""Run-time decisions: numpy (+ ONNX Runtime through ``world/``), no messages, no ROS.

``limits`` (the one clamp kernel), ``safety`` (the safety layer on it), ``arbitration`` (which source
commands and whether a plan may be followed, as pure functions), ``policy`` (BundlePolicy, the one policy
contract), ``history`` (the one control-grid aligner, offline and online), ``features``, ``kinematics``,
``urdf`` and ``planner``. Nothing here imports ``wm_control.ros`` (``tests/test_layers.py`` checks it).
"""
