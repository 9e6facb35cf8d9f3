"""Training the visual world model, stage by stage (DESIGN.md steps 2-6), and its bundle.

``train_visual`` runs, on camera bags (collected into the data folder when it is empty):

1. **encoder** (JEPA): a context encoder sees a frame with random blocks masked; a predictor maps
   its latent and a time offset dt in 0..``jepa_max_offset`` to the latent that the EMA target encoder
   (stop-gradient) gives the full frame t+dt; L2 in latent space. The EMA momentum follows a cosine
   schedule ``tau0 -> tau1`` indexed by the global step, so a resumed run (``resume=True``, from
   ``encoder_state.pt``, written every ``ckpt_every`` steps) continues the same schedule. The log
   carries a collapse monitor: the per-dimension std of the target latents over each batch.
2. **latents**: the target encoder's latent of every frame; its mean/std become the normaliser.
3. **decoder**: pixels from frozen normalised latents (for people only).
4. **lam**: the latent action VAE on consecutive latents; trained with no action topics at all.
5. **teacher**: bidirectional, windows of ``window`` frames, a random-length context, conditioned
   on the LAM's latent actions.
6. **student**: (a) regression on the teacher's outputs with teacher-forced inputs (the sequence
   is the true context followed by the teacher's own predictions); (b) self-forcing: the student
   streams the context through its KV cache, rolls ``horizon`` frames out on its own predictions
   and is trained across the whole rollout against the teacher and the data.
7. **adapter**: on the labelled episodes only (``labelled_fraction``), joint commands -> latent
   actions.

``train_dynamics`` is steps 5-6 on other action sources for the comparison in ``eval visual``:
real (normalised) joint commands on all or on the labelled episodes only.

A checkpoint folder holds ``checkpoint.yaml`` (config, spec, normalisers, metrics, data), one
``.pt`` per module, ``train_log.jsonl`` and ``latents.npz``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.data.dataset import DatasetConfig, find_bags, load_episodes
from wm_control.train.presets import PRESETS
from wm_control.world.frames import FrameSpec, prepare_frame


@dataclass
class VisualConfig:
    robot: str = "reacher"
    image_size: int = 64
    frame_rate: float = 30.0
    """The camera rate: one model step per frame."""
    episodes: int = 400
    """Episodes to collect when the data folder is empty (expert with noise ``collect_noise``)."""
    heldout_episodes: int = 40
    collect_noise: float = 0.5
    episode_s: float = 2.0
    latent_dim: int = 32
    enc_channels: tuple[int, ...] = (32, 64, 64, 128)
    jepa_steps: int = 2500
    jepa_batch: int = 64
    jepa_lr: float = 1e-3
    jepa_max_offset: int = 3
    tau0: float = 0.996
    tau1: float = 1.0
    jepa_var_weight: float = 1.0
    """Anti-collapse: hinge on the per-dimension std of the context latents (VICReg's variance term);
    without it the EMA target and the predictor agree on a constant within a few hundred steps here."""
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
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
    base = {
        "debug": VisualConfig(episodes=6, heldout_episodes=2, episode_s=1.2, latent_dim=8, enc_channels=(8, 8, 16, 16),
                              jepa_steps=30, jepa_batch=16, ckpt_every=10, decoder_steps=20, decoder_batch=16,
                              lam_steps=30, window=8, context=4, horizon=4, teacher_dim=32, teacher_layers=2,
                              teacher_steps=20, student_dim=16, student_layers=1, student_steps_a=10,
                              student_steps_b=10, dyn_batch=8, adapter_steps=30, align_steps=10,
                              labelled_fraction=0.5),
        "quick": VisualConfig(),
        "full": VisualConfig(episodes=2000, heldout_episodes=100, jepa_steps=30000, jepa_batch=256,
                             decoder_steps=10000, lam_steps=20000, teacher_dim=384, teacher_layers=8,
                             teacher_steps=50000, student_dim=192, student_layers=4, student_steps_a=20000,
                             student_steps_b=20000, dyn_batch=128, adapter_steps=10000, align_steps=5000),
    }[name]
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
@dataclass
class VideoEpisode:
    frames: np.ndarray  # (T, S, S, 3) uint8, model resolution
    command: np.ndarray  # (T, n): the position target in effect from frame t to t+1
    q: np.ndarray  # (T, n)
    goal: np.ndarray | None  # (T, 3)
    source: str


def ensure_video(cfg: VisualConfig, data_dir: Path, episodes: int, seed: int) -> None:
    if data_dir.exists() and any(data_dir.rglob("metadata.yaml")):
        return
    from wm_control.data.bags import CollectConfig, collect

    print(f"[train visual] no bags in {data_dir}: collecting {episodes} camera episodes "
          f"(expert, noise {cfg.collect_noise})", file=sys.stderr)
    collect(CollectConfig(robot=cfg.robot, policy="expert", noise=cfg.collect_noise, episodes=episodes,
                          episode_s=cfg.episode_s, render=True, seed=seed), data_dir)


def load_video(data_dir: str | Path, cfg: VisualConfig,
               with_actions: bool = True) -> tuple[list[VideoEpisode], list[str]]:
    """Episodes at the camera rate, frames resized as camera_ingest does (cached next to the bags).
    ``with_actions=False`` reads the bags as unlabelled video: the command topic is ignored."""
    data_dir = Path(data_dir)
    cache = data_dir / f".video_{cfg.image_size}_{cfg.frame_rate:g}.npz"
    bags = sorted(str(p.parent) for p in data_dir.rglob("metadata.yaml"))
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if list(z["bags"]) == bags:
            eps, names = _unpack(z)
            return (eps if with_actions else unlabelled(eps)), names
    spec = FrameSpec(cfg.image_size, cfg.image_size)
    dcfg = DatasetConfig(rate=cfg.frame_rate)
    eps, video_only, names = [], [], []
    for bag in find_bags([data_dir]):
        if _has_topics(bag, dcfg):
            for e in load_episodes([bag], dcfg):
                if e.frames is None:
                    raise ValueError(f"{bag}: no {dcfg.image_topic} (the visual world model needs the camera)")
                names = names or e.joint_names
                if len(e) >= cfg.window:
                    eps.append(VideoEpisode(np.stack([prepare_frame(f, spec) for f in e.frames]),
                                            e.action.astype(np.float32), e.q.astype(np.float32),
                                            None if e.goal is None else e.goal.astype(np.float32), e.source))
        else:
            video_only.extend(seg for seg in read_video_only(bag, dcfg, spec) if len(seg[0]) >= cfg.window)
    n = len(names)
    for frames, src in video_only:
        nan = np.full((len(frames), n), np.nan, np.float32)
        eps.append(VideoEpisode(frames, nan, nan.copy(), None, src))
    if not eps:
        raise ValueError(f"no camera episodes of {cfg.window}+ frames under {data_dir} "
                         f"(bags need {dcfg.image_topic})")
    lens = np.array([len(e.frames) for e in eps])
    np.savez(cache, bags=np.array(bags), names=np.array(names), lens=lens,
             frames=np.concatenate([e.frames for e in eps]), command=np.concatenate([e.command for e in eps]),
             q=np.concatenate([e.q for e in eps]),
             goal=np.concatenate([e.goal if e.goal is not None else np.full((len(e.q), 3), np.nan, np.float32)
                                  for e in eps]), sources=np.array([e.source for e in eps]))
    return (eps if with_actions else unlabelled(eps)), names


def unlabelled(eps: list[VideoEpisode]) -> list[VideoEpisode]:
    """The same episodes as video: the commands blanked (NaN)."""
    return [replace(e, command=np.full_like(e.command, np.nan)) for e in eps]


def _has_topics(bag: Path, dcfg: DatasetConfig) -> bool:
    """True when the bag has joint states and commands (robot logs); False for camera-only video."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as r:
        topics = {c.topic for c in r.connections}
    return dcfg.joint_states_topic in topics and dcfg.command_topic in topics


def read_video_only(bag: Path, dcfg: DatasetConfig, spec: FrameSpec) -> list[tuple[np.ndarray, str]]:
    """Camera-only bags (no joint states, no commands): frames on a uniform grid at ``dcfg.rate`` (the
    latest frame at or before each instant), split where the stream has a gap over ``dcfg.max_gap``."""
    from rosbags.highlevel import AnyReader

    from wm_control.messages import convert as cv
    from wm_control.messages import registry

    stamps, frames = [], []
    with AnyReader([bag], default_typestore=registry().store) as r:
        conns = [c for c in r.connections if c.topic == dcfg.image_topic]
        if not conns:
            raise ValueError(f"{bag}: no {dcfg.image_topic}; topics {sorted(c.topic for c in r.connections)}")
        for conn, t_ns, raw in r.messages(connections=conns):
            msg = r.deserialize(raw, conn.msgtype)
            st = cv.stamp_sec(msg.header.stamp)
            stamps.append(st if st > 0 else t_ns * 1e-9)
            frames.append(prepare_frame(cv.image_to_rgb(msg), spec))
    if not stamps:
        return []
    order = np.argsort(stamps, kind="stable")
    t, f = np.asarray(stamps)[order], np.stack(frames)[order]
    out = []
    for seg in np.split(np.arange(len(t)), np.flatnonzero(np.diff(t) > dcfg.max_gap) + 1):
        grid = t[seg[0]] + np.arange(int(np.floor((t[seg[-1]] - t[seg[0]]) * dcfg.rate + 1e-9)) + 1) / dcfg.rate
        idx = seg[0] + np.searchsorted(t[seg], grid + 1e-9, side="right") - 1
        out.append((f[idx], str(bag)))
    return out


def _unpack(z: Any) -> tuple[list[VideoEpisode], list[str]]:
    cut = np.cumsum(z["lens"])[:-1]
    parts = [np.split(z[k], cut) for k in ("frames", "command", "q", "goal")]
    eps = [VideoEpisode(f, c, q, None if np.isnan(g).all() else g, str(s))
           for f, c, q, g, s in zip(*parts, z["sources"])]
    return eps, [str(n) for n in z["names"]]


def labelled_split(eps: list[VideoEpisode], fraction: float, seed: int) -> np.ndarray:
    """Indices of the labelled episodes: a fixed random ``fraction`` of all episodes (at least one),
    drawn from those whose bags carry commands (camera-only video cannot be labelled)."""
    has = np.flatnonzero([not np.isnan(e.command).all() for e in eps])
    if not len(has):
        raise ValueError("no episode has joint commands: the action adapter needs a few labelled episodes")
    rng = np.random.default_rng(seed + 17)
    k = min(len(has), max(1, int(round(fraction * len(eps)))))
    return np.sort(rng.choice(has, size=k, replace=False))


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0, leave=False)


def momentum_at(step: int, total: int, tau0: float, tau1: float) -> float:
    """EMA momentum at ``step`` of ``total``: cosine from tau0 to tau1 (a function of the step only)."""
    return tau1 - (tau1 - tau0) * (math.cos(math.pi * min(step, total) / max(total, 1)) + 1) / 2


def make_teacher(cfg: VisualConfig, action_dim: int, path: Path | None = None):
    """The teacher of ``cfg``'s size; its weights from ``path`` when given (then in eval mode)."""
    from wm_control.world.visual import Teacher

    return _weights(Teacher(cfg.latent_dim, action_dim, cfg.window, cfg.teacher_dim, cfg.teacher_layers, cfg.heads),
                    path)


def make_student(cfg: VisualConfig, action_dim: int, path: Path | None = None):
    from wm_control.world.visual import Student

    return _weights(Student(cfg.latent_dim, action_dim, cfg.window, cfg.student_dim, cfg.student_layers, cfg.heads),
                    path)


def _weights(module, path: Path | None):
    import torch

    if path is not None:
        module.load_state_dict(torch.load(path, weights_only=True))
        module.eval()
    return module


def _warmup_cosine(opt, total: int, warmup: float = 0.05):
    import torch

    w = max(1, int(warmup * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - w) / max(1, total - w)))))


class _Log:
    def __init__(self, path: Path, mode: str = "w"):
        self.f = open(path, mode)

    def write(self, **rec: Any) -> None:
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _mask_blocks(x, blocks: int, size: int, gen):
    """Zero ``blocks`` random size x size squares of each image (x: (B, 3, H, W), in place on a copy)."""
    import torch

    x = x.clone()
    B, _, H, W = x.shape
    ys = torch.randint(0, H - size + 1, (B, blocks), generator=gen)
    xs = torch.randint(0, W - size + 1, (B, blocks), generator=gen)
    for b in range(B):
        for k in range(blocks):
            x[b, :, ys[b, k]:ys[b, k] + size, xs[b, k]:xs[b, k] + size] = 0.0
    return x


def _var_cov(z):
    zc = z - z.mean(0)
    std = (zc.pow(2).mean(0) + 1e-4).sqrt()
    cov = zc.T @ zc / max(len(z) - 1, 1)
    off = cov - cov.diag().diag()
    return (1.0 - std).clamp(min=0).mean(), off.pow(2).sum() / z.shape[1]


# ------------------------------------------------------------------------------------------
# 1. JEPA encoder
# ------------------------------------------------------------------------------------------
def train_encoder(cfg: VisualConfig, eps: list[VideoEpisode], out: Path, resume: bool = False,
                  max_steps: int | None = None) -> dict[str, Any]:
    """JEPA; ``max_steps`` stops this call early (after a checkpoint), as a pre-empted job would."""
    import copy

    import torch

    from wm_control.world.visual import ConvEncoder, JEPAPredictor, frames_to_input

    torch.manual_seed(cfg.seed)
    enc = ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim)
    pred = JEPAPredictor(cfg.latent_dim, cfg.jepa_max_offset)
    target = copy.deepcopy(enc).requires_grad_(False)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(pred.parameters()), lr=cfg.jepa_lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    state_path = out / "encoder_state.pt"
    if resume and state_path.exists():
        try:  # tensors and plain types only: a pickled object in the file would run code when unpickled
            st = torch.load(state_path, weights_only=True)
        except Exception as exc:
            msg = " ".join(str(exc).split())[:300]
            raise RuntimeError(f"{state_path}: not a plain tensor checkpoint, refusing to resume from it "
                               f"(delete it to start the encoder afresh): {type(exc).__name__}: {msg}") from None
        enc.load_state_dict(st["encoder"])
        pred.load_state_dict(st["predictor"])
        target.load_state_dict(st["target"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        rng.bit_generator.state = st["rng"]
        step = int(st["step"])
        tau = momentum_at(step, cfg.jepa_steps, cfg.tau0, cfg.tau1)
        print(f"[train visual] encoder: resumed at step {step} (momentum {tau:.5f})", file=sys.stderr)
    log = _Log(out / "train_log.jsonl", "a" if step else "w")
    lens = np.array([len(e.frames) for e in eps])
    total = cfg.jepa_steps
    bar = _progress(total - step, "encoder (JEPA)")
    t0 = time.time()
    rec: dict[str, Any] = {}
    stop = total if max_steps is None else min(total, step + max_steps)
    while step < stop:
        ei = rng.integers(len(eps), size=cfg.jepa_batch)
        dt = rng.integers(0, cfg.jepa_max_offset + 1, size=cfg.jepa_batch)
        t = (rng.random(cfg.jepa_batch) * (lens[ei] - dt)).astype(int)
        ctx = frames_to_input(torch.from_numpy(np.stack([eps[e].frames[i] for e, i in zip(ei, t)])))
        tgt = frames_to_input(torch.from_numpy(np.stack([eps[e].frames[i + d] for e, i, d in zip(ei, t, dt)])))
        with torch.no_grad():
            z_tgt = target(tgt)
        z_ctx = enc(_mask_blocks(ctx, cfg.mask_blocks, cfg.mask_size, gen))
        z_pred = pred(z_ctx, torch.from_numpy(dt))
        pred_loss = (z_pred - z_tgt).pow(2).sum(-1).mean()
        var_loss, cov_loss = _var_cov(z_ctx)
        loss = pred_loss + cfg.jepa_var_weight * var_loss + cfg.jepa_cov_weight * cov_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        tau = momentum_at(step, total, cfg.tau0, cfg.tau1)
        with torch.no_grad():
            for p_t, p in zip(target.parameters(), enc.parameters()):
                p_t.mul_(tau).add_(p.detach(), alpha=1 - tau)
        step += 1
        if step % 50 == 0 or step == total:
            std = z_tgt.std(0)
            rec = {"stage": "encoder", "step": step, "loss": pred_loss.item(), "var_loss": var_loss.item(),
                   "cov_loss": cov_loss.item(), "momentum": tau,
                   "latent_std_mean": float(std.mean()), "latent_std_min": float(std.min()),
                   "latent_dims_collapsed": int((std < 1e-3 * max(float(std.max()), 1e-12)).sum()),
                   "latent_norm": float(z_tgt.norm(dim=-1).mean())}
            log.write(**rec)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}", std=f"{rec['latent_std_mean']:.3f}")
        if bar is not None:
            bar.update(1)
        if step % cfg.ckpt_every == 0 or step == stop:
            torch.save({"encoder": enc.state_dict(), "predictor": pred.state_dict(), "target": target.state_dict(),
                        "opt": opt.state_dict(), "gen": gen.get_state(), "rng": rng.bit_generator.state,
                        "step": step}, state_path)
    if bar is not None:
        bar.close()
    log.close()
    if step < total:
        return {"seconds": time.time() - t0, "final": rec, "stopped_at": step}
    torch.save(target.state_dict(), out / "encoder.pt")
    if rec and rec["latent_std_mean"] < 1e-3:
        print("[train visual] WARNING: the encoder's latents have collapsed (std < 1e-3): more data or a "
              "slower momentum schedule", file=sys.stderr)
    return {"seconds": time.time() - t0, "final": rec}


def encode_all(encoder, frames_list: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    import torch

    from wm_control.world.visual import frames_to_input

    out = []
    with torch.no_grad():
        for frames in frames_list:
            zs = [encoder(frames_to_input(torch.from_numpy(frames[i:i + batch]))).numpy()
                  for i in range(0, len(frames), batch)]
            out.append(np.concatenate(zs).astype(np.float32))
    return out


def probe_r2(z_tr: np.ndarray, y_tr: np.ndarray, z_te: np.ndarray, y_te: np.ndarray,
             groups: dict[str, slice], ridge: float = 1e-2) -> dict[str, float | None]:
    """Linear probe (ridge) from latents to targets; on the test set, R^2 pooled over each group of
    target columns (pooled, so a column with little held-out variance cannot dominate)."""
    X = np.c_[z_tr, np.ones(len(z_tr))]
    w = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y_tr)
    pred = np.c_[z_te, np.ones(len(z_te))] @ w
    ss_res = ((pred - y_te) ** 2).sum(0)
    ss_tot = ((y_te - y_te.mean(0)) ** 2).sum(0)
    out: dict[str, float | None] = {}
    for name, cols in groups.items():
        tot = float(ss_tot[cols].sum())
        out[name] = 1.0 - float(ss_res[cols].sum()) / tot if ss_tot[cols].size and tot > 0 else None
    return out


def probe_targets(e: VideoEpisode) -> np.ndarray:
    cols = [np.cos(e.q), np.sin(e.q)]
    if e.goal is not None:
        cols.append(e.goal[:, :2])
    return np.concatenate(cols, 1)


# ------------------------------------------------------------------------------------------
# 3. decoder, 4. LAM
# ------------------------------------------------------------------------------------------
def train_decoder(cfg: VisualConfig, eps: list[VideoEpisode], lat: list[np.ndarray], out: Path) -> dict[str, Any]:
    import torch

    from wm_control.world.visual import PixelDecoder

    torch.manual_seed(cfg.seed + 1)
    dec = PixelDecoder(cfg.image_size, cfg.latent_dim, cfg.dec_channels)
    opt = torch.optim.AdamW(dec.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.decoder_steps)
    Z = torch.from_numpy(np.concatenate(lat))
    F_ = np.concatenate([e.frames for e in eps])
    rng = np.random.default_rng(cfg.seed + 1)
    bar = _progress(cfg.decoder_steps, "decoder")
    t0 = time.time()
    log = _Log(out / "train_log.jsonl", "a")
    for step in range(cfg.decoder_steps):
        i = rng.integers(len(Z), size=cfg.decoder_batch)
        x = torch.from_numpy(F_[i]).float().permute(0, 3, 1, 2) / 255.0
        loss = (dec(Z[i]) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            mse = loss.item()
            log.write(stage="decoder", step=step + 1, mse=mse, psnr=float(-10 * math.log10(max(mse, 1e-12))))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    log.close()
    torch.save(dec.state_dict(), out / "decoder.pt")
    return {"seconds": time.time() - t0, "mse": loss.item()}


def train_lam(cfg: VisualConfig, lat: list[np.ndarray], out: Path) -> dict[str, Any]:
    """Only latents (no action topic is read)."""
    import torch

    from wm_control.world.visual import LatentActionModel

    torch.manual_seed(cfg.seed + 2)
    lam = LatentActionModel(cfg.latent_dim, cfg.action_dim)
    opt = torch.optim.AdamW(lam.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.lam_steps)
    Z0 = torch.from_numpy(np.concatenate([z[:-1] for z in lat]))
    Z1 = torch.from_numpy(np.concatenate([z[1:] for z in lat]))
    rng = np.random.default_rng(cfg.seed + 2)
    bar = _progress(cfg.lam_steps, "latent actions")
    log = _Log(out / "train_log.jsonl", "a")
    t0 = time.time()
    for step in range(cfg.lam_steps):
        i = rng.integers(len(Z0), size=256)
        rec, kl, _ = lam(Z0[i], Z1[i])
        mse = (rec - Z1[i]).pow(2).sum(-1).mean()
        loss = mse + cfg.lam_beta * kl.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            log.write(stage="lam", step=step + 1, recon=mse.item(), kl=kl.mean().item())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    lam.eval()
    with torch.no_grad():
        rec, kl, _ = lam(Z0, Z1, sample=False)
        copy_err = float((Z0 - Z1).pow(2).sum(-1).mean())  # predicting "no change"
        res = {"seconds": time.time() - t0, "recon": float((rec - Z1).pow(2).sum(-1).mean()), "kl": float(kl.mean()),
               "no_change_error": copy_err}
    log.write(stage="lam", **res)
    log.close()
    torch.save(lam.state_dict(), out / "lam.pt")
    return res


def latent_actions(lam, lat: list[np.ndarray]) -> list[np.ndarray]:
    """a[t] = the LAM's mean latent action from frame t to t+1 (the last one: zeros)."""
    import torch

    out = []
    with torch.no_grad():
        for z in lat:
            mu, _ = lam.encode(torch.from_numpy(z[:-1]), torch.from_numpy(z[1:]))
            out.append(np.concatenate([mu.numpy(), np.zeros((1, mu.shape[1]), np.float32)]).astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------
# 5-6. teacher and student
# ------------------------------------------------------------------------------------------
class Windows:
    """Random windows of ``T`` frames (latents and actions) from a set of episodes."""

    def __init__(self, lat: list[np.ndarray], act: list[np.ndarray], T: int, seed: int):
        self.lat = [z for z in lat if len(z) >= T]
        self.act = [a for z, a in zip(lat, act) if len(z) >= T]
        if not self.lat:
            raise ValueError(f"no episode is {T} frames long")
        self.T, self.rng = T, np.random.default_rng(seed)

    def sample(self, batch: int):
        import torch

        ei = self.rng.integers(len(self.lat), size=batch)
        st = [self.rng.integers(len(self.lat[e]) - self.T + 1) for e in ei]
        z = np.stack([self.lat[e][s:s + self.T] for e, s in zip(ei, st)])
        a = np.stack([self.act[e][s:s + self.T] for e, s in zip(ei, st)])
        return torch.from_numpy(z), torch.from_numpy(a)


def train_teacher(cfg: VisualConfig, win: Windows, action_dim: int, out: Path, name: str = "teacher"):
    import torch

    torch.manual_seed(cfg.seed + 3)
    T = cfg.window
    teacher = make_teacher(cfg, action_dim)
    opt = torch.optim.AdamW(teacher.parameters(), lr=cfg.dyn_lr, weight_decay=1e-4)
    sched = _warmup_cosine(opt, cfg.teacher_steps)
    bar = _progress(cfg.teacher_steps, name)
    log = _Log(out / "train_log.jsonl", "a")
    t0 = time.time()
    for step in range(cfg.teacher_steps):
        z, a = win.sample(cfg.dyn_batch)
        c = torch.randint(2, T, (cfg.dyn_batch, 1))
        known = torch.arange(T).unsqueeze(0) < c
        pred = teacher(z, a, known)
        loss = ((pred - z).pow(2).sum(-1) * (~known)).sum() / (~known).sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            log.write(stage=name, step=step + 1, loss=loss.item())
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    log.close()
    torch.save(teacher.eval().state_dict(), out / f"{name}.pt")
    return teacher, {"seconds": time.time() - t0, "loss": loss.item()}


def train_student(cfg: VisualConfig, win: Windows, teacher, action_dim: int, out: Path, name: str = "student"):
    """(a) regression on teacher outputs, teacher-forced; (b) self-forcing against teacher and data."""
    import torch

    torch.manual_seed(cfg.seed + 4)
    C, H = cfg.context, cfg.horizon
    L = C + H
    student = make_student(cfg, action_dim)
    total = cfg.student_steps_a + cfg.student_steps_b
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.dyn_lr, weight_decay=1e-4)
    sched = _warmup_cosine(opt, total)
    bar = _progress(total, name)
    log = _Log(out / "train_log.jsonl", "a")
    t0 = time.time()
    res: dict[str, Any] = {}
    for step in range(total):
        z, a = win.sample(cfg.dyn_batch)
        z, a = z[:, :L], a[:, :L]
        with torch.no_grad():
            z_teacher = teacher.predict(z[:, :C], a, H)  # frames C..L-1
        if step < cfg.student_steps_a:
            seq = torch.cat([z[:, :C], z_teacher], 1)  # the teacher's trajectory, teacher-forced
            pred = student(seq[:, :-1], a[:, :L - 1])
            loss = (pred - seq[:, 1:]).pow(2).sum(-1).mean()
            stage = "a"
        else:
            roll = student.rollout(z[:, :C], a[:, :L - 1], H)
            w = cfg.student_data_weight
            loss_t = (roll - z_teacher).pow(2).sum(-1).mean()
            loss_d = (roll - z[:, C:]).pow(2).sum(-1).mean()
            loss = (1 - w) * loss_t + w * loss_d
            stage = "b"
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0 or step + 1 == total:
            rec = {"stage": f"{name}_{stage}", "step": step + 1, "loss": loss.item()}
            if stage == "b":
                rec.update(to_teacher=loss_t.item(), to_data=loss_d.item())
            log.write(**rec)
            res[stage] = rec
            if bar is not None:
                bar.set_postfix(stage=stage, loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    log.close()
    torch.save(student.eval().state_dict(), out / f"{name}.pt")
    return student, {"seconds": time.time() - t0, **res}


def train_adapter(cfg: VisualConfig, lat: list[np.ndarray], act: list[np.ndarray], cmd: list[np.ndarray],
                  out: Path, lam, student=None) -> tuple[Any, dict[str, Any]]:
    """Labelled episodes only: (z_{t-1}, z_t, command_t) -> latent action a_t, by regression on the LAM's
    actions, then (with ``student``) end to end through the frozen student's command-driven rollouts."""
    import torch

    from wm_control.world.visual import ActionAdapter

    torch.manual_seed(cfg.seed + 5)
    zp = np.concatenate([np.concatenate([z[:1], z[:-2]]) for z in lat])
    zc = np.concatenate([z[:-1] for z in lat])
    u = np.concatenate([c[:-1] for c in cmd])
    y = np.concatenate([a[:-1] for a in act])
    n = cmd[0].shape[1]
    ad = ActionAdapter(cfg.latent_dim, n, y.shape[1], cfg.adapter_hidden)
    ad.lam_enc.load_state_dict(lam.enc.state_dict())
    ad.lam_enc.requires_grad_(False)
    ad.cmd_mean.copy_(torch.from_numpy(u.mean(0)))
    ad.cmd_std.copy_(torch.from_numpy(np.maximum(u.std(0), 1e-3)))
    X = [torch.from_numpy(v) for v in (zp, zc, u)]
    Y = torch.from_numpy(y)
    opt = torch.optim.AdamW(ad.net.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.adapter_steps)
    rng = np.random.default_rng(cfg.seed + 5)
    t0 = time.time()
    for _ in range(cfg.adapter_steps):
        i = torch.from_numpy(rng.integers(len(Y), size=256))
        loss = (ad(*(x[i] for x in X)) - Y[i]).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        err = float((ad(*X) - Y).pow(2).sum(-1).mean())
    res: dict[str, Any] = {"regression_error": err, "action_var": float(Y.var(0).sum()), "samples": int(len(Y))}
    if student is not None and cfg.align_steps > 0:
        res.update(_align_adapter(cfg, ad, student, lat, cmd, out))
    torch.save(ad.eval().state_dict(), out / "adapter.pt")
    return ad, {"seconds": time.time() - t0, **res}


def _align_adapter(cfg: VisualConfig, ad, student, lat: list[np.ndarray], cmd: list[np.ndarray],
                   out: Path) -> dict[str, Any]:
    import torch

    from wm_control.world.visual import rollout_commands

    C, H = cfg.context, cfg.horizon
    L = C + H
    win = Windows(lat, cmd, L, cfg.seed + 6)
    student.requires_grad_(False)
    opt = torch.optim.AdamW(ad.net.parameters(), lr=3e-4, weight_decay=1e-2)
    sched = _warmup_cosine(opt, cfg.align_steps)
    bar = _progress(cfg.align_steps, "align actions")
    log = _Log(out / "train_log.jsonl", "a")
    first = None
    for step in range(cfg.align_steps):
        z, u = win.sample(cfg.dyn_batch)
        loss = (rollout_commands(student, ad, z[:, :C], u[:, :L - 1], H) - z[:, C:]).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ad.net.parameters(), 1.0)
        opt.step()
        sched.step()
        first = loss.item() if first is None else first
        if (step + 1) % 100 == 0 or step + 1 == cfg.align_steps:
            log.write(stage="align", step=step + 1, rollout_error=loss.item())
            if bar is not None:
                bar.set_postfix(err=f"{loss.item():.3f}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    log.close()
    student.requires_grad_(True)
    return {"rollout_error_before_alignment": first, "rollout_error_after": loss.item()}


# ------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------
def _data_dirs(cfg: VisualConfig, data_dir: str | Path | None, heldout_dir: str | Path | None) -> tuple[Path, Path]:
    d = Path(data_dir or f"data/{cfg.robot}_video")
    h = Path(heldout_dir or f"{d}_heldout")
    ensure_video(cfg, d, cfg.episodes, cfg.seed)
    ensure_video(cfg, h, cfg.heldout_episodes, cfg.seed + 1000)
    return d, h


def train_visual(cfg: VisualConfig, data_dir: str | Path | None = None, out_dir: str | Path = "runs/visual",
                 heldout_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Every stage (see the module doc); returns the checkpoint folder."""
    import torch
    import yaml

    from wm_control.world.visual import ConvEncoder, LatentActionModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d, h = _data_dirs(cfg, data_dir, heldout_dir)
    labelled, names = load_video(d, cfg)  # read once: the commands serve the labelled subset only
    eps = unlabelled(labelled)  # every stage up to the student sees video: no action topic is used
    heldout, _ = load_video(h, cfg)
    print(f"[train visual] {len(eps)} episodes ({sum(len(e.frames) for e in eps)} frames at {cfg.frame_rate:g} Hz, "
          f"{cfg.image_size}x{cfg.image_size}) from {d}; held out: {len(heldout)} from {h}", file=sys.stderr)
    metrics: dict[str, Any] = {}
    prev = _previous_metrics(out) if resume else {}

    def done(stage: str, *files: str) -> bool:
        """resume: a finished stage (its files and metrics are there) is kept."""
        return resume and stage in prev and all((out / f).exists() for f in files)

    if done("encoder", "encoder.pt"):
        metrics["encoder"] = prev["encoder"]
        print("[train visual] resume: keeping the trained encoder", file=sys.stderr)
    else:
        metrics["encoder"] = train_encoder(cfg, eps, out, resume=resume)
        _save_progress(out, metrics)
    enc = ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim)
    enc.load_state_dict(torch.load(out / "encoder.pt", weights_only=True))
    enc.eval()
    raw = encode_all(enc, [e.frames for e in eps])
    allz = np.concatenate(raw)
    mean, std = allz.mean(0), np.maximum(allz.std(0), 1e-6)
    lat = [((z - mean) / std).astype(np.float32) for z in raw]
    lat_h = [((z - mean) / std).astype(np.float32) for z in encode_all(enc, [e.frames for e in heldout])]
    # the probe reads joint angles and goal off the latent: only episodes that log them (not camera-only video)
    logged = [i for i, e in enumerate(eps) if not np.isnan(e.q).any()]
    logged_h = [i for i, e in enumerate(heldout) if not np.isnan(e.q).any()]
    yt = np.concatenate([probe_targets(eps[i]) for i in logged])
    yh = np.concatenate([probe_targets(heldout[i]) for i in logged_h])
    n = len(names)
    pr = probe_r2(np.concatenate([lat[i] for i in logged]), yt, np.concatenate([lat_h[i] for i in logged_h]), yh,
                  {"joint_cos_sin": slice(0, 2 * n), "goal_xy": slice(2 * n, None)})
    metrics["encoder"]["probe_r2"] = pr
    print(f"[train visual] encoder: linear probe R^2 on held-out frames: joint angles (cos, sin) "
          f"{pr['joint_cos_sin']}, goal {pr['goal_xy']}", file=sys.stderr)
    _save_progress(out, metrics)
    for stage, fn in (("decoder", lambda: train_decoder(cfg, eps, lat, out)),
                      ("lam", lambda: train_lam(cfg, lat, out))):
        if done(stage, f"{stage}.pt"):
            metrics[stage] = prev[stage]
        else:
            metrics[stage] = fn()
            _save_progress(out, metrics)
    lam = LatentActionModel(cfg.latent_dim, cfg.action_dim)
    lam.load_state_dict(torch.load(out / "lam.pt", weights_only=True))
    lam.eval()
    act = latent_actions(lam, lat)
    win = Windows(lat, act, cfg.window, cfg.seed)
    if done("teacher", "teacher.pt"):
        teacher = make_teacher(cfg, cfg.action_dim, out / "teacher.pt")
        metrics["teacher"] = prev["teacher"]
    else:
        teacher, metrics["teacher"] = train_teacher(cfg, win, cfg.action_dim, out)
        _save_progress(out, metrics)
    if done("student", "student.pt"):
        student = make_student(cfg, cfg.action_dim, out / "student.pt")
        metrics["student"] = prev["student"]
    else:
        student, metrics["student"] = train_student(cfg, win, teacher, cfg.action_dim, out)
        _save_progress(out, metrics)
    lab = labelled_split(labelled, cfg.labelled_fraction, cfg.seed)
    _, metrics["adapter"] = train_adapter(cfg, [lat[i] for i in lab], [act[i] for i in lab],
                                          [labelled[i].command for i in lab], out, lam, student=student.eval())
    np.savez(out / "latents.npz", mean=mean, std=std, labelled=lab)
    meta = {"kind": "visual", "config": _plain(asdict(cfg)), "joint_names": names, "data": str(d),
            "heldout": str(h), "episodes": len(eps), "labelled_episodes": [int(i) for i in lab],
            "normalizer": {"latent_mean": mean.tolist(), "latent_std": std.tolist()},
            "metrics": _plain(metrics), "action_source": "latent"}
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out


def _save_progress(out: Path, metrics: dict[str, Any]) -> None:
    (out / "progress.json").write_text(json.dumps(_plain(metrics), indent=1))


def _previous_metrics(out: Path) -> dict[str, Any]:
    p = out / "progress.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


@dataclass
class VisualModels:
    cfg: VisualConfig
    meta: dict[str, Any]
    encoder: Any
    decoder: Any
    lam: Any
    teacher: Any
    student: Any
    adapter: Any
    mean: np.ndarray
    std: np.ndarray


def load_visual(ckpt_dir: str | Path) -> VisualModels:
    import torch

    from wm_control.train import read_checkpoint
    from wm_control.world.visual import ActionAdapter, ConvEncoder, LatentActionModel, PixelDecoder

    ckpt = Path(ckpt_dir)
    meta = read_checkpoint(ckpt, "visual")
    cfg = VisualConfig(**meta["config"])
    n = len(meta["joint_names"])
    mods = {
        "encoder": ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim),
        "decoder": PixelDecoder(cfg.image_size, cfg.latent_dim, cfg.dec_channels),
        "lam": LatentActionModel(cfg.latent_dim, cfg.action_dim),
        "teacher": make_teacher(cfg, cfg.action_dim),
        "student": make_student(cfg, cfg.action_dim),
        "adapter": ActionAdapter(cfg.latent_dim, n, cfg.action_dim, cfg.adapter_hidden),
    }
    for k, m in mods.items():
        m.load_state_dict(torch.load(ckpt / f"{k}.pt", weights_only=True))
        m.eval()
    norm = meta["normalizer"]
    return VisualModels(cfg, meta, mean=np.asarray(norm["latent_mean"], np.float32),
                        std=np.asarray(norm["latent_std"], np.float32), **mods)


# ------------------------------------------------------------------------------------------
# Other action sources (for the comparison)
# ------------------------------------------------------------------------------------------
def train_dynamics(ckpt_dir: str | Path, actions: str, fraction: str, out_dir: str | Path,
                   cfg_overrides: dict[str, Any] | None = None) -> Path:
    """Teacher + student on the visual checkpoint's latents with ``actions`` 'real' (normalised joint
    commands) and ``fraction`` 'all' or 'labelled' (the checkpoint's labelled episodes only)."""
    import yaml

    vm = load_visual(ckpt_dir)
    cfg = replace(vm.cfg, **(cfg_overrides or {}))
    if actions != "real" or fraction not in ("all", "labelled"):
        raise ValueError("train_dynamics: actions must be 'real', fraction 'all' or 'labelled'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eps, _ = load_video(vm.meta["data"], cfg)
    lat = [((z - vm.mean) / vm.std).astype(np.float32) for z in encode_all(vm.encoder, [e.frames for e in eps])]
    keep = [i for i, e in enumerate(eps) if not np.isnan(e.command).all()] if fraction == "all" \
        else list(vm.meta["labelled_episodes"])
    cmd = np.concatenate([eps[i].command for i in keep])
    c_mean, c_std = cmd.mean(0), np.maximum(cmd.std(0), 1e-3)
    act = [((eps[i].command - c_mean) / c_std).astype(np.float32) for i in keep]
    win = Windows([lat[i] for i in keep], act, cfg.window, cfg.seed)
    (out / "train_log.jsonl").write_text("")
    teacher, m_t = train_teacher(cfg, win, act[0].shape[1], out, "teacher")
    _, m_s = train_student(cfg, win, teacher, act[0].shape[1], out, "student")
    meta = {"kind": "visual_dynamics", "visual": str(ckpt_dir), "actions": actions, "fraction": fraction,
            "episodes": len(keep), "config": _plain(asdict(cfg)),
            "command_normalizer": {"mean": c_mean.tolist(), "std": c_std.tolist()},
            "metrics": _plain({"teacher": m_t, "student": m_s})}
    (out / "checkpoint.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return out


def load_dynamics(ckpt_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:

    from wm_control.train import read_checkpoint

    meta = read_checkpoint(ckpt_dir, "visual_dynamics")
    cfg = VisualConfig(**meta["config"])
    n = len(meta["command_normalizer"]["mean"])
    return (make_teacher(cfg, n, Path(ckpt_dir) / "teacher.pt"), make_student(cfg, n, Path(ckpt_dir) / "student.pt"),
            meta)


# ------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------
def _onnx(module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
          dynamic: dict[str, dict[int, str]] | None = None) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=17, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic or {})


def export_visual_graphs(vm: VisualModels, tmp: Path, n_joints: int) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The runtime graphs: encoder, student_step (static shapes, batch 1), action_adapter, decoder."""
    import torch

    from wm_control.world.visual import ExportedDecoder, ExportedEncoder, ExportedStudentStep

    cfg, s = vm.cfg, vm.student
    S, Dz, Da = cfg.image_size, cfg.latent_dim, cfg.action_dim
    f32 = "float32"
    graphs: dict[str, tuple[Path, dict[str, Any]]] = {}
    p = tmp / "encoder.onnx"
    _onnx(ExportedEncoder(vm.encoder, torch.from_numpy(vm.mean), torch.from_numpy(vm.std)),
          (torch.zeros(1, S, S, 3, dtype=torch.uint8),), p, ["frame"], ["latent"])
    graphs["encoder"] = (p, {"inputs": {"frame": {"shape": [1, S, S, 3], "dtype": "uint8"}},
                             "outputs": {"latent": {"shape": [1, Dz], "dtype": f32}},
                             "description": "RGB frame at model resolution -> normalised JEPA latent"})
    cache = list(s.cache_shape(1))
    k, v, age = s.empty_cache(1)
    p = tmp / "student_step.onnx"
    _onnx(ExportedStudentStep(s), (torch.zeros(1, Dz), torch.zeros(1, Da), k, v, age, torch.zeros(1, dtype=torch.long)),
          p, ["latent", "action", "k_cache", "v_cache", "key_age", "write_pos"],
          ["next_latent", "k_cache_out", "v_cache_out", "key_age_out"])
    graphs["student_step"] = (p, {
        "inputs": {"latent": {"shape": [1, Dz], "dtype": f32}, "action": {"shape": [1, Da], "dtype": f32},
                   "k_cache": {"shape": cache, "dtype": f32}, "v_cache": {"shape": cache, "dtype": f32},
                   "key_age": {"shape": [1, s.window], "dtype": f32}, "write_pos": {"shape": [1], "dtype": "int64"}},
        "outputs": {"next_latent": {"shape": [1, Dz], "dtype": f32}, "k_cache_out": {"shape": cache, "dtype": f32},
                    "v_cache_out": {"shape": cache, "dtype": f32},
                    "key_age_out": {"shape": [1, s.window], "dtype": f32}},
        "window": s.window, "layers": s.n_layers, "heads": s.heads, "head_dim": s.head_dim,
        "description": "one frame through the causal student; the KV cache is a ring of `window` slots: "
                       "write_pos = frame index mod window; key_age starts at 1e4 (empty)"})
    p = tmp / "action_adapter.onnx"
    _onnx(vm.adapter, (torch.zeros(1, Dz), torch.zeros(1, Dz), torch.zeros(1, n_joints)), p,
          ["latent_prev", "latent", "command"], ["action"],
          {"latent_prev": {0: "batch"}, "latent": {0: "batch"}, "command": {0: "batch"}, "action": {0: "batch"}})
    graphs["action_adapter"] = (p, {
        "inputs": {"latent_prev": {"shape": [-1, Dz], "dtype": f32}, "latent": {"shape": [-1, Dz], "dtype": f32},
                   "command": {"shape": [-1, n_joints], "dtype": f32}},
        "outputs": {"action": {"shape": [-1, Da], "dtype": f32}},
        "description": "joint position command (bundle joint order, rad) -> latent action"})
    p = tmp / "decoder.onnx"
    _onnx(ExportedDecoder(vm.decoder), (torch.zeros(2, Dz),), p, ["latent"], ["frame"],
          {"latent": {0: "batch"}, "frame": {0: "batch"}})
    graphs["decoder"] = (p, {"inputs": {"latent": {"shape": [-1, Dz], "dtype": f32}},
                             "outputs": {"frame": {"shape": [-1, S, S, 3], "dtype": "uint8"}},
                             "description": "normalised latent -> RGB frame (for people: previews)"})
    return graphs


def export_visual(ckpt_dir: str | Path, bundle_dir: str | Path) -> Path:
    """A verified bundle with the visual world model's runtime graphs."""
    import tempfile

    from wm_control.train.bc import sim_position_limits
    from wm_control.world.bundle import write_bundle

    vm = load_visual(ckpt_dir)
    cfg, meta = vm.cfg, vm.meta
    names = meta["joint_names"]
    with tempfile.TemporaryDirectory() as tmp:
        graphs = export_visual_graphs(vm, Path(tmp), len(names))
        robot = {"name": cfg.robot, "joint_names": names, "control_rate": 50.0,
                 "position_limits": sim_position_limits(cfg.robot, names)}
        camera = {"width": cfg.image_size, "height": cfg.image_size, "encoding": "rgb8", "rate": cfg.frame_rate}
        visual = {"latent_dim": cfg.latent_dim, "action_dim": cfg.action_dim, "window": cfg.window,
                  "context": cfg.context, "horizon": cfg.horizon, "frame_rate": cfg.frame_rate,
                  "action_source": "latent"}
        normalizers = {"latent": meta["normalizer"],
                       "command": {"mean": vm.adapter.cmd_mean.tolist(), "std": vm.adapter.cmd_std.tolist()}}
        return write_bundle(bundle_dir, graphs, robot=robot, camera=camera, normalizers=normalizers,
                            training={"visual": {"stage": "visual", "config": meta["config"], "data": meta["data"]}},
                            metrics={"visual": meta["metrics"]}, sections={"visual": visual})
