"""pip-installable wm_control (the colcon build uses CMakeLists.txt + ament_cmake_python instead)."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithMsgs(build_py):
    """Ship msg/*.msg (the message definitions) and config/*.yaml inside the package."""

    def run(self):
        super().run()
        for src, dst in (("msg", "msg_defs"), ("config", "config")):
            out = Path(self.build_lib) / "wm_control" / dst
            out.mkdir(parents=True, exist_ok=True)
            for f in (HERE / src).glob("*.*"):
                shutil.copy2(f, out / f.name)


setup(
    name="wm_control",
    version="0.1.0",
    description="ROS 2 robot control stack with a learned world model (DreamDojo-style student, RWM-U ensemble)",
    packages=find_packages(include=["wm_control", "wm_control.*"]),
    package_data={"wm_control.messages": ["interfaces/*/srv/*.srv", "interfaces/*/msg/*.msg"]},  # ROS 2 definitions
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "pyyaml>=6",
        "rosbags>=0.10",
        "cyclonedds>=0.10.5",
        "mujoco>=3.1",
        "gymnasium[mujoco]>=1.0",
        "tqdm",
        "onnx>=1.15",  # bundle verification (graph inputs/outputs against the manifest)
        "cryptography>=42,<51",  # bundle signatures (ed25519)
        "matplotlib",  # eval and bench plots
        "gymnasium-robotics>=1.2",  # the Franka Panda model (MJCF + meshes) for sim/panda.py; only its files are read
        "tyro>=0.9",  # the CLI: flags generated from the config dataclasses and their docstrings
    ],
    extras_require={
        # inference: CPU build everywhere; GPU machines take onnxruntime-gpu (CUDA + TensorRT EPs)
        "cpu": ["onnxruntime>=1.17", "opencv-python-headless>=4.8"],
        "gpu": ["onnxruntime-gpu>=1.17", "opencv-python-headless>=4.8"],
        # training: `pip install torch==2.13.0` finds the CPU build on machines without CUDA wheels
        "train": ["torch==2.13.0", "safetensors>=0.4"],
        "dev": ["pytest>=7", "pytest-timeout", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["wm-control = wm_control.cli:main"]},
    cmdclass={"build_py": BuildWithMsgs},
)
