"""The visual world model's configuration: every stage's sizes and steps (sizes by name: ``visual_preset``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wm_control.sim.robots import DEFAULT_ROBOT
from wm_control.train.presets import preset


@dataclass
class VisualConfig:
    robot: str = DEFAULT_ROBOT
    """The simulated robot whose camera bags are collected when the data folder is empty."""
    robot_config: str = ""
    """A robot config YAML (or a name in config/robots/): the bags' camera topic (raw or compressed), joint
    and command topics, joints and limits; its bags are never collected, and without a held-out folder the
    last tenth of its episodes is held out. '' for the simulated ROBOT."""
    image_size: int = 64
    frame_rate: float = 30.0
    """The camera rate: one model step per frame (a robot's camera rate, e.g. 15 for a 15 Hz camera)."""
    episodes: int = 400
    """Episodes to collect when the data folder is empty (expert with noise ``collect_noise``)."""
    heldout_episodes: int = 40
    collect_noise: float = 0.5
    episode_s: float = 2.0
    latent_dim: int = 32
    enc_channels: tuple[int, ...] = (32, 64, 64, 128)
    enc_keypoints: int = 0
    """Spatial-softmax keypoints of the encoder's second feature map (a quarter of the frame's size) fed to its
    last linear map with the final features: a small object's place, linearly (0: none)."""
    jepa_steps: int = 2500
    jepa_batch: int = 64
    jepa_lr: float = 1e-3
    jepa_max_offset: int = 3
    tau0: float = 0.996
    tau1: float = 1.0
    jepa_var_weight: float = 1.0
    """Anti-collapse: hinge on the per-dimension std of the context latents (VICReg's variance term);
    without it the EMA target and the predictor agree on a constant within a few hundred steps here."""
    jepa_patch_weight: float = 0.0
    """Patch-level JEPA targets (0: off): also predict the target frame's feature map after the second
    convolution cell by cell (layer-normed, from the EMA target) from the context's, weighted this much, with
    a variance hinge on the map's channels; every place in the picture must then be represented."""
    jepa_cov_weight: float = 0.04
    """Decorrelates latent dimensions (VICReg's covariance term), so the latent spreads what it sees."""
    mask_blocks: int = 2
    mask_size: int = 16
    ckpt_every: int = 500
    dec_channels: tuple[int, ...] = (64, 32, 16, 8)
    decoder_steps: int = 1500
    decoder_batch: int = 64
    action_dim: int = 4
    lam_steps: int = 3000
    lam_beta: float = 0.02
    window: int = 32
    context: int = 16
    horizon: int = 16
    teacher_dim: int = 224
    teacher_layers: int = 4
    teacher_steps: int = 2000
    student_dim: int = 128
    student_layers: int = 3
    student_steps_a: int = 800
    student_steps_b: int = 1000
    student_data_weight: float = 0.5
    """Stage (b): loss = (1 - w) * to the teacher + w * to the data."""
    dyn_batch: int = 32
    dyn_lr: float = 1e-3
    adapter_hidden: int = 0
    """0: a linear map from (the last transition's latent action, command) to the next latent action."""
    adapter_steps: int = 2000
    """Regression of the LAM's latent actions on (latents, command): the adapter's initialisation."""
    align_steps: int = 300
    """Then end to end: the frozen student driven by commands through the adapter, rolled out over the
    horizon on the labelled windows, against the true latents."""
    labelled_fraction: float = 0.1
    heads: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        self.enc_channels = tuple(self.enc_channels)
        self.dec_channels = tuple(self.dec_channels)
        if self.image_size % 2 ** len(self.enc_channels):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^{len(self.enc_channels)}")
        if self.context + self.horizon > self.window:
            raise ValueError(f"context + horizon ({self.context}+{self.horizon}) must fit the window {self.window}")
        if not 0 < self.labelled_fraction <= 1:
            raise ValueError("labelled_fraction must be in (0, 1]")
        if not 0 < self.tau0 <= self.tau1 <= 1:
            raise ValueError("need 0 < tau0 <= tau1 <= 1")


def visual_preset(name: str, **overrides: Any) -> VisualConfig:
    return preset(VisualConfig, name, **overrides)
