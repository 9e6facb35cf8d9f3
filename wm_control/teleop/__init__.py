"""Teleoperation, no ROS (the node :mod:`wm_control.ros.nodes.teleop` wires it to topics). Import the submodules:
:mod:`.keys` and :mod:`.joy` (input mappings), :mod:`.target` (the commanded target), :mod:`.session` (mode,
e-stop, deadman: what to publish), :mod:`.view` and :mod:`.mjpeg` (the operator's view), :mod:`.terminal`."""
