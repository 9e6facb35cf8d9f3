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


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def debug_bc(tmp_path_factory):
    """A BC checkpoint and bundle from the debug preset (collects its own tiny data set)."""
    from wm_control.train.bc import export_bc, train_bc
    from wm_control.train.presets import bc_preset

    root = tmp_path_factory.mktemp("debug_bc")
    ckpt = train_bc(bc_preset("debug"), root / "data", root / "ckpt")
    return ckpt, export_bc(ckpt, root / "bundle")


@pytest.fixture(scope="session")
def debug_ensemble(debug_bc, tmp_path_factory):
    """A debug-preset ensemble trained on the debug BC data: (checkpoint, bundle with the BC policy)."""
    import torch

    from wm_control.train.ensemble import ensemble_preset, export_ensemble, train_ensemble

    ckpt, bc = debug_bc
    out = tmp_path_factory.mktemp("debug_ens")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is several times faster than two fighting
    try:
        ens = train_ensemble(ensemble_preset("debug"), ckpt.parent / "data", out / "ckpt", progress=False)
    finally:
        torch.set_num_threads(threads)
    return ens, export_ensemble(ens, out / "bundle", policy_bundle=bc)


@pytest.fixture(scope="session")
def debug_visual(tmp_path_factory):
    """The visual world model from the debug preset (collects its own tiny camera data): (ckpt, bundle)."""
    from wm_control.train.visual import export_visual

    root = tmp_path_factory.mktemp("debug_visual")
    ckpt = train_debug_visual(root)
    return ckpt, export_visual(ckpt, root / "bundle")


def train_debug_visual(root: Path, **overrides):
    """train_visual at the debug preset (+ ``overrides``) into ROOT/ckpt, its bags collected into ROOT/data."""
    import torch

    from wm_control.train.visual import train_visual, visual_preset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two fighting
    try:
        return train_visual(visual_preset("debug", **overrides), root / "data", root / "ckpt")
    finally:
        torch.set_num_threads(threads)
