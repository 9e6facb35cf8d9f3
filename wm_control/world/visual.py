"""The visual world model (DreamDojo-style), as torch modules.

* :class:`ConvEncoder`: frame (uint8 HxWx3) -> latent vector. Trained as a JEPA (see
  ``wm_control.train.visual``): a context encoder sees a masked frame, a predictor maps its latent
  (and a time offset) to the latent an EMA *target* encoder gives the full frame at t+dt.
* :class:`PixelDecoder`: latent -> frame, trained on frozen latents; only for showing predictions.
* :class:`LatentActionModel`: a VAE over consecutive frames. Its encoder sees the latents of frames
  t and t+1 and outputs a low-dimensional continuous latent action; its decoder sees frame t's latent
  and the latent action only; the KL weight is the information bottleneck.
* :class:`Teacher`: bidirectional attention over a window of latent frames and actions; frames
  after the context are mask tokens and are predicted all at once.
* :class:`Student`: causal attention with ALiBi position bias inside a sliding window of ``window``
  frames. :meth:`Student.forward` runs a whole sequence in parallel (training);
  :meth:`Student.step` runs one frame against a fixed-size KV cache (streaming; the ONNX graph).
  The cache is a ring of ``window`` slots: ``write_pos`` says which slot the new frame overwrites,
  ``key_age`` holds each slot's age in frames (>= window: empty or expired). Ages, not absolute
  positions, so numbers stay small however long the stream runs, and every shape is static.
* :class:`ActionAdapter`: (previous latent, latent, joint command) -> latent action, fitted on a
  small labelled subset so robot and teleop commands can drive a student trained on latent actions.

All latents here are *normalised* (the encoder's output minus its data mean, over its std); the
exported encoder has the normaliser folded in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EMPTY_AGE = 1.0e4
"""Age of a cache slot that holds nothing."""
NEG = -1.0e4
"""Additive mask: large enough to zero a softmax weight, small enough for fp16 (TensorRT)."""


# ------------------------------------------------------------------------------------------
# Frames <-> latents
# ------------------------------------------------------------------------------------------
def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 (or float 0..255) -> (B, 3, H, W) float in [-0.5, 0.5]."""
    return frames.float().permute(0, 3, 1, 2) / 255.0 - 0.5


class SpatialSoftmax(nn.Module):
    """Feature maps (B, K, H, W) -> (B, 2K): each channel's softmax over the image, as its expected x, y in
    [-1, 1] (the keypoints of deep spatial autoencoders, Finn et al. 2016). Where a thing is becomes a number
    that moves linearly with it: a small object's place survives into the latent."""

    def __init__(self, size: int):
        super().__init__()
        c = torch.linspace(-1.0, 1.0, size)
        self.register_buffer("xs", c.repeat(size), persistent=False)  # (H*W,) x of each cell, row-major
        self.register_buffer("ys", c.repeat_interleave(size), persistent=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(f.flatten(2), dim=-1)  # (B, K, H*W)
        return torch.cat([p @ self.xs, p @ self.ys], dim=-1)


class ConvEncoder(nn.Module):
    """Strided convolutions -> a linear map to the latent. With ``keypoints`` K > 0, K spatial-softmax
    keypoints of the feature map after ``keypoint_layer`` convolutions (e.g. 16x16 of a 64x64 frame) join the
    last feature map as the linear map's input."""

    def __init__(self, image_size: int = 64, channels: tuple[int, ...] = (32, 64, 64, 128), latent_dim: int = 32,
                 keypoints: int = 0, keypoint_layer: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, size = 3, image_size
        kp_in = kp_size = 0
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.GELU()]
            c_in, size = c, size // 2
            if i + 1 == keypoint_layer:
                kp_in, kp_size = c, size
        self.keypoints = int(keypoints)
        self.keypoint_layer = int(keypoint_layer)
        self.map_channels, self.map_size = kp_in, kp_size
        if self.keypoints:
            if not 1 <= keypoint_layer <= len(channels):
                raise ValueError(f"keypoint_layer must be in 1..{len(channels)}")
            self.head = nn.Sequential(*layers[:2 * keypoint_layer])
            self.conv = nn.Sequential(*layers[2 * keypoint_layer:])
            self.kp = nn.Conv2d(kp_in, self.keypoints, 1)
            self.softmax = SpatialSoftmax(kp_size)
        else:
            self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * size * size + 2 * self.keypoints, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) from :func:`frames_to_input`."""
        if not self.keypoints:
            return self.fc(self.conv(x).flatten(1))
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent, the feature map after ``keypoint_layer`` convolutions): the map is what patch-level JEPA
        targets predict."""
        if self.keypoints:
            h = self.head(x)
            return self.fc(torch.cat([self.conv(h).flatten(1), self.softmax(self.kp(h))], dim=-1)), h
        k = 2 * self.keypoint_layer
        h = self.conv[:k](x)
        return self.fc(self.conv[k:](h).flatten(1)), h


class PatchPredictor(nn.Module):
    """Patch-level JEPA: a context frame's feature map (B, C, S, S) and the frame offset -> the target frame's
    feature map, cell by cell (I-JEPA / V-JEPA predict patch features, not one vector: every place in the
    picture, a small object's too, must be represented to be predicted)."""

    def __init__(self, channels: int, max_offset: int, hidden: int = 64):
        super().__init__()
        self.max_offset = max_offset
        self.net = nn.Sequential(nn.Conv2d(channels + max_offset + 1, hidden, 3, 1, 1), nn.GELU(),
                                 nn.Conv2d(hidden, hidden, 3, 1, 1), nn.GELU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, f: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        oh = F.one_hot(offset.long(), self.max_offset + 1).float()[:, :, None, None].expand(-1, -1, *f.shape[2:])
        return self.net(torch.cat([f, oh], dim=1))


class JEPAPredictor(nn.Module):
    """Context latent + one-hot time offset -> the target encoder's latent at t + offset."""

    def __init__(self, latent_dim: int, max_offset: int, hidden: int = 256):
        super().__init__()
        self.max_offset = max_offset
        self.net = nn.Sequential(nn.Linear(latent_dim + max_offset + 1, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))

    def forward(self, z: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, F.one_hot(offset, self.max_offset + 1).float()], -1))


class PixelDecoder(nn.Module):
    def __init__(self, image_size: int = 64, latent_dim: int = 32, channels: tuple[int, ...] = (64, 32, 16, 8)):
        super().__init__()
        self.base = image_size // 2 ** len(channels)
        self.c0 = channels[0]
        self.fc = nn.Linear(latent_dim, channels[0] * self.base * self.base)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, list(channels[1:]) + [channels[-1]]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.GELU()]
        layers += [nn.Conv2d(channels[-1], 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """-> (B, 3, H, W) in [0, 1]."""
        h = F.gelu(self.fc(z)).view(-1, self.c0, self.base, self.base)
        return torch.sigmoid(self.net(h))


def mlp(d_in: int, d_out: int, hidden: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.GELU()]
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


class LatentActionModel(nn.Module):
    """VAE: q(a | z_t, z_t+1) and p(z_t+1 | z_t, a); the decoder never sees frame t+1."""

    def __init__(self, latent_dim: int, action_dim: int = 4, hidden: int = 256):
        super().__init__()
        self.enc = mlp(2 * latent_dim, 2 * action_dim, hidden)
        self.dec = mlp(latent_dim + action_dim, latent_dim, hidden)
        self.action_dim = action_dim

    def encode(self, z0: torch.Tensor, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(torch.cat([z0, z1], -1)).chunk(2, -1)
        return mu, logvar.clamp(-10, 5)

    def decode(self, z0: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return z0 + self.dec(torch.cat([z0, a], -1))

    def forward(self, z0: torch.Tensor, z1: torch.Tensor, sample: bool = True):
        mu, logvar = self.encode(z0, z1)
        a = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return self.decode(z0, a), kl, mu


class ActionAdapter(nn.Module):
    """(z_{t-1}, z_t, joint command) -> latent action.

    It reads the last transition the way the LAM does (a frozen copy of the LAM's encoder: the latent
    action that took z_{t-1} to z_t, which carries the motion) and maps it with the normalised command
    to the next latent action; ``hidden`` 0 is a linear map. Compact inputs on purpose: an adapter that
    saw the two 32-d latents themselves memorised the few labelled episodes (held-out rollout error
    1.5x larger than with this one)."""

    def __init__(self, latent_dim: int, n_joints: int, action_dim: int, hidden: int = 0, lam_hidden: int = 256):
        super().__init__()
        self.action_dim = action_dim
        self.lam_enc = mlp(2 * latent_dim, 2 * action_dim, lam_hidden)
        self.lam_enc.requires_grad_(False)
        d_in = action_dim + n_joints
        self.net = mlp(d_in, action_dim, hidden, 1) if hidden else nn.Linear(d_in, action_dim)
        self.register_buffer("cmd_mean", torch.zeros(n_joints))
        self.register_buffer("cmd_std", torch.ones(n_joints))

    def forward(self, z_prev: torch.Tensor, z: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        last = self.lam_enc(torch.cat([z_prev, z], -1))[..., :self.action_dim]
        return self.net(torch.cat([last, (command - self.cmd_mean) / self.cmd_std], -1))


# ------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------
def alibi_slopes(heads: int) -> torch.Tensor:
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)])


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads, self.dh = heads, dim // heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, return_kv: bool = False):
        """x (B, T, D); bias (heads, T, T) or (B, heads, T, T), added to the attention logits.
        ``return_kv``: also the keys and values (B, heads, T, dh), to fill a KV cache."""
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh) + bias
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(out)
        x = x + self.mlp(self.ln2(x))
        return (x, k, v) if return_kv else x

    def step(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, onehot: torch.Tensor,
             bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token. x (B, D); caches (B, heads, W, dh); onehot (B, 1, W, 1); bias (B, heads, W)."""
        B, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, 3, self.heads, self.dh).unbind(1)
        k_cache = k_cache * (1.0 - onehot) + onehot * k.unsqueeze(2)
        v_cache = v_cache * (1.0 - onehot) + onehot * v.unsqueeze(2)
        att = (k_cache @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.dh) + bias  # (B, heads, W)
        out = (att.softmax(-1).unsqueeze(-2) @ v_cache).squeeze(-2).reshape(B, D)
        x = x + self.proj(out)
        return x + self.mlp(self.ln2(x)), k_cache, v_cache


class Teacher(nn.Module):
    """Bidirectional: sees every frame of the window it is given (context) and every action."""

    def __init__(self, latent_dim: int, action_dim: int, window: int, dim: int = 128, layers: int = 3,
                 heads: int = 4):
        super().__init__()
        self.window = window
        self.z_in = nn.Linear(latent_dim, dim)
        self.a_in = nn.Linear(action_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.pos = nn.Parameter(torch.randn(window, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_dim)

    def forward(self, z: torch.Tensor, a: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """z (B, T, Dz), a (B, T, Da): action a[t] moves frame t to t+1; known (B, T) bool: frames the
        teacher may see. Returns a prediction of every frame (B, T, Dz); only the unknown ones matter."""
        B, T, _ = z.shape
        x = torch.where(known.unsqueeze(-1), self.z_in(z), self.mask_token) + self.a_in(a) + self.pos[:T]
        bias = torch.zeros(1, 1, T, T, device=z.device)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.head(self.ln(x))

    def predict(self, z_context: torch.Tensor, a: torch.Tensor, horizon: int) -> torch.Tensor:
        """Context (B, C, Dz) and actions (B, C + horizon, Da) -> the next ``horizon`` frames."""
        B, C, Dz = z_context.shape
        z = torch.cat([z_context, z_context.new_zeros(B, horizon, Dz)], 1)
        known = torch.zeros(B, C + horizon, dtype=torch.bool, device=z.device)
        known[:, :C] = True
        return self.forward(z, a[:, :C + horizon], known)[:, C:]


class Student(nn.Module):
    """Causal; the output at frame t is frame t+1 (as z_t plus a change)."""

    def __init__(self, latent_dim: int, action_dim: int, window: int, dim: int = 64, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        self.window, self.dim, self.heads, self.n_layers = window, dim, heads, layers
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.z_in = nn.Linear(latent_dim, dim)
        self.a_in = nn.Linear(action_dim, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_dim)
        self.register_buffer("slopes", alibi_slopes(heads))

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def cache_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (self.n_layers, batch, self.heads, self.window, self.head_dim)

    def empty_cache(self, batch: int = 1, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = self.cache_shape(batch)
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device),
                torch.full((batch, self.window), EMPTY_AGE, device=device))

    def _bias(self, T: int, device) -> torch.Tensor:
        i = torch.arange(T, device=device)
        age = (i[:, None] - i[None, :]).float()  # query i, key j
        allowed = (age >= 0) & (age < self.window)
        return torch.where(allowed, -self.slopes.view(-1, 1, 1) * age, torch.tensor(NEG, device=device))

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: z (B, T, Dz), a (B, T, Da) -> predictions of frames 1..T (B, T, Dz)."""
        x = self.z_in(z) + self.a_in(a)
        bias = self._bias(z.shape[1], z.device)
        for blk in self.blocks:
            x = blk(x, bias)
        return z + self.head(self.ln(x))

    def step(self, z: torch.Tensor, a: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
             key_age: torch.Tensor, write_pos: torch.Tensor):
        """One frame: z (B, Dz), a (B, Da), caches (L, B, heads, W, dh), key_age (B, W) float,
        write_pos (B,) int64 (the slot to overwrite). Returns (next z, k_cache, v_cache, key_age)."""
        W = self.window
        hot = (torch.arange(W, device=z.device).unsqueeze(0) == write_pos.unsqueeze(1)).float()  # (B, W)
        age = key_age * (1.0 - hot) + 1.0 - hot  # every other slot ages by one; the new one is 0
        valid = age < W
        bias = torch.where(valid.unsqueeze(1), -self.slopes.view(1, -1, 1) * age.unsqueeze(1),
                           torch.full_like(age.unsqueeze(1), NEG))  # (B, heads, W)
        onehot = hot.view(-1, 1, W, 1)
        x = self.z_in(z) + self.a_in(a)
        ks, vs = [], []
        for i, blk in enumerate(self.blocks):
            x, kc, vc = blk.step(x, k_cache[i], v_cache[i], onehot, bias)
            ks.append(kc)
            vs.append(vc)
        return z + self.head(self.ln(x)), torch.stack(ks), torch.stack(vs), age.clamp(max=EMPTY_AGE)

    def prefill(self, z: torch.Tensor, a: torch.Tensor):
        """The first C <= window frames in one parallel pass: the same predictions and the same KV cache
        as C calls of :meth:`step` from an empty cache (slots 0..C-1). Returns (preds (B, C, Dz), cache)."""
        B, C, _ = z.shape
        if C > self.window:
            raise ValueError(f"prefill takes at most window={self.window} frames, got {C}")
        x = self.z_in(z) + self.a_in(a)
        bias = self._bias(C, z.device)
        ks, vs = [], []
        for blk in self.blocks:
            x, k, v = blk(x, bias, return_kv=True)
            ks.append(F.pad(k, (0, 0, 0, self.window - C)))
            vs.append(F.pad(v, (0, 0, 0, self.window - C)))
        age = torch.cat([torch.arange(C - 1, -1, -1, device=z.device, dtype=torch.float32),
                         torch.full((self.window - C,), EMPTY_AGE, device=z.device)]).expand(B, -1)
        return z + self.head(self.ln(x)), (torch.stack(ks), torch.stack(vs), age.contiguous())

    def rollout(self, z_context: torch.Tensor, a: torch.Tensor, horizon: int) -> torch.Tensor:
        """The context (B, C, Dz) into the cache (one parallel pass), then ``horizon`` frames fed back
        on its own predictions through the cache; a (B, C + horizon - 1, Da). Differentiable.
        Returns (B, horizon, Dz): the predictions of frames C .. C + horizon - 1."""
        B, C, _ = z_context.shape
        ctx, (k, v, age) = self.prefill(z_context, a[:, :C])
        z_next, preds = ctx[:, -1], [ctx[:, -1]]
        for t in range(C, C + horizon - 1):
            wp = torch.full((B,), t % self.window, dtype=torch.long, device=z_context.device)
            z_next, k, v, age = self.step(z_next, a[:, t], k, v, age, wp)
            preds.append(z_next)
        return torch.stack(preds, 1)


def rollout_commands(student: Student, adapter: "ActionAdapter", z_context: torch.Tensor, command: torch.Tensor,
                     horizon: int) -> torch.Tensor:
    """The student driven by joint commands through the adapter (actions from its own latents once it
    runs on its own predictions): z_context (B, C, Dz), command (B, C + horizon - 1, n). -> (B, horizon, Dz)"""
    B, C, _ = z_context.shape
    z_prev = torch.cat([z_context[:, :1], z_context[:, :-1]], 1)
    a_ctx = adapter(z_prev, z_context, command[:, :C])
    ctx, (k, v, age) = student.prefill(z_context, a_ctx)
    z_prev, z_t = z_context[:, -1], ctx[:, -1]
    preds = [z_t]
    for t in range(C, C + horizon - 1):
        a = adapter(z_prev, z_t, command[:, t])
        wp = torch.full((B,), t % student.window, dtype=torch.long, device=z_context.device)
        z_next, k, v, age = student.step(z_t, a, k, v, age, wp)
        z_prev, z_t = z_t, z_next
        preds.append(z_next)
    return torch.stack(preds, 1)


class ExportedStudentStep(nn.Module):
    """The ONNX step graph: fixed shapes (batch 1), the cache in and out, a write position."""

    def __init__(self, student: Student):
        super().__init__()
        self.s = student

    def forward(self, latent, action, k_cache, v_cache, key_age, write_pos):
        return self.s.step(latent, action, k_cache, v_cache, key_age, write_pos)


class ExportedEncoder(nn.Module):
    """uint8 (B, H, W, 3) RGB -> normalised latent (B, Dz)."""

    def __init__(self, encoder: ConvEncoder, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.e = encoder
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, frame):
        return (self.e(frames_to_input(frame)) - self.mean) / self.std


class ExportedDecoder(nn.Module):
    """Normalised latents (B, Dz) -> uint8 (B, H, W, 3) RGB."""

    def __init__(self, decoder: PixelDecoder):
        super().__init__()
        self.d = decoder

    def forward(self, latent):
        img = self.d(latent).permute(0, 2, 3, 1) * 255.0
        return (img + 0.5).clamp(0, 255).to(torch.uint8)


class ExportedStudentWindow(nn.Module):
    """The whole context recomputed: (1, W, Dz), (1, W, Da) -> the next frame after the last one."""

    def __init__(self, student: Student):
        super().__init__()
        self.s = student

    def forward(self, latents, actions):
        return self.s(latents, actions)[:, -1]


class ExportedTeacher(nn.Module):
    """Context (1, C, Dz) + actions (1, C+H, Da) -> the next H frames in one bidirectional pass."""

    def __init__(self, teacher: Teacher, horizon: int):
        super().__init__()
        self.t, self.h = teacher, horizon

    def forward(self, context, actions):
        return self.t.predict(context, actions, self.h)
