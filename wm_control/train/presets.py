"""Named sizes for everything that trains: ``debug`` (every stage in seconds: tests), ``quick``
(a usable result on a 2-core CPU in minutes), ``full`` (a GPU).

One factory, :func:`preset`, makes any training configuration at a named size from one table per
configuration class (:data:`TABLES`: the fields each size sets; ``quick`` is the class's defaults),
then applies the caller's overrides. ``bc_preset`` and the other ``*_preset`` functions are
:func:`preset` for one class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from wm_control.sim.robots import DEFAULT_ROBOT

PRESETS = ("debug", "quick", "full")

C = TypeVar("C")

TABLES: dict[str, dict[str, dict[str, Any]]] = {
    "BCConfig": {
        "debug": dict(episodes=4, episode_s=0.6, hidden=[32, 32], iterations=40, batch_size=64),
        "quick": {},
        "full": dict(episodes=1000, hidden=[512, 512, 512], iterations=30000, batch_size=1024),
    },
    "EnsembleConfig": {
        "debug": dict(members=3, hidden=32, iterations=30, batch_size=64, horizon=4, episodes=6,
                      calibration_horizon=8, reward_samples=200),
        "quick": {},
        "full": dict(hidden=256, layers=3, iterations=20000, batch_size=1024, horizon=32, episodes=2000),
    },
    "PPOConfig": {
        "debug": dict(num_envs=32, rollout_steps=8, iterations=3, epochs=2, minibatch=128, hidden=[32, 32],
                      max_steps=20),
        "quick": {},
        "full": dict(num_envs=4096, rollout_steps=64, iterations=1000, minibatch=16384, hidden=[256, 256]),
    },
    "VisualConfig": {
        "debug": dict(episodes=6, heldout_episodes=2, episode_s=1.2, latent_dim=8, enc_channels=(8, 8, 16, 16),
                      jepa_steps=30, jepa_batch=16, ckpt_every=10, decoder_steps=20, decoder_batch=16,
                      lam_steps=30, window=8, context=4, horizon=4, teacher_dim=32, teacher_layers=2,
                      teacher_steps=20, student_dim=16, student_layers=1, student_steps_a=10,
                      student_steps_b=10, dyn_batch=8, adapter_steps=30, align_steps=10,
                      labelled_fraction=0.5),
        "quick": {},
        "full": dict(episodes=2000, heldout_episodes=100, jepa_steps=30000, jepa_batch=256,
                     decoder_steps=10000, lam_steps=20000, teacher_dim=384, teacher_layers=8,
                     teacher_steps=50000, student_dim=192, student_layers=4, student_steps_a=20000,
                     student_steps_b=20000, dyn_batch=128, adapter_steps=10000, align_steps=5000),
    },
}
"""Per configuration class (by name: the classes live with their trainers), the fields of each size."""


def preset(kind: type[C], name: str, **overrides: Any) -> C:
    """``kind`` (a config dataclass with a table in :data:`TABLES`) at size ``name``, then ``overrides``
    (``None`` values are ignored: an option that was not given keeps the preset's value)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
    table = TABLES.get(kind.__name__)
    if table is None:
        raise ValueError(f"no presets for {kind.__name__}; sizes are known for {sorted(TABLES)}")
    return replace(kind(**table[name]), **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class BCConfig:
    """Behaviour cloning of a position-target policy from expert bags."""

    robot: str = DEFAULT_ROBOT
    robot_config: str = ""
    """A robot config YAML (or a name in config/robots/): topics, joints, command and camera kind, goal
    source and rate of the bags; '' for the simulated ROBOT."""
    episodes: int = 400
    """Episodes to collect when the data folder is empty."""
    collect_noise: float = 0.3
    """Expert noise of the collected demonstrations (DART-style: noisy states, mean-clean labels)."""
    episode_s: float = 2.0
    control_rate: float = 50.0
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    iterations: int = 8000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    observation: str = "joint_trig_goal"
    """Without joint velocities: with them the clone learns to copy its own motion and can lock into
    spinning (measured: 10% vs 90% success on the same 400 episodes). With visual: joint_trig_goal_latent,
    joint_trig_goal_xy_latent (the goal's x, y only) or joint_trig_goal_image_latent (the goal-image mode: the
    goal image's latent in place of the goal point)."""
    visual: str = ""
    """A visual world model bundle (`train visual --bundle`): the policy also sees the latent of the latest
    camera frame, encoded by this bundle's encoder as the world_model node publishes it on /wm/latent; the
    bundle records its id, and the policy node follows only that model's latents."""
    goal_image_topic: str = "/goal_image"
    """observation joint_trig_goal_image_latent: the bags' goal image topic (the goal as a picture)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1 or not self.hidden:
            raise ValueError("iterations, batch_size >= 1 and at least one hidden layer")
        from wm_control.control.features import LATENT_KINDS, OBSERVATION_KINDS

        if self.visual and self.observation not in LATENT_KINDS:
            raise ValueError(f"visual: the observation must see the latent ({' or '.join(LATENT_KINDS)}), "
                             f"not {self.observation!r}")
        if not self.visual and self.observation not in OBSERVATION_KINDS:
            raise ValueError(f"observation {self.observation!r}: " + (
                "a latent kind needs visual (a visual world model bundle)" if self.observation in LATENT_KINDS
                else f"use one of {sorted(OBSERVATION_KINDS)}"))
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")


def bc_preset(name: str, **overrides: Any) -> BCConfig:
    return preset(BCConfig, name, **overrides)
