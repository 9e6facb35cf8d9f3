import os
import random
import sys
from pathlib import Path

# Every test talks over Cyclone DDS on loopback only, on a domain of its own run (so parallel
# sessions on the machine do not hear each other), and renders headless.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.pop("CYCLONEDDS_URI", None)
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(100, 200)))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["PYTHONUNBUFFERED"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
