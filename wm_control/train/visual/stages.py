"""The stages of the visual world model. Each is a function of the config, its inputs and the checkpoint
folder: it saves its module's ``.pt`` there and logs its curve to ``train_log.jsonl`` (the adapter only
for its end-to-end alignment). The JEPA encoder (and the linear probe of its latents), the pixel
decoder, the latent action model, the bidirectional teacher, the causal student (regression, then
self-forcing) and the action adapter; ``make_teacher`` / ``make_student`` build (and load) the two."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.report import JsonLines, progress, summary_line
from wm_control.train.visual.config import VisualConfig
from wm_control.train.visual.data import VideoEpisode


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def _bar(total: int, desc: str) -> Any:
    return progress(total, desc, leave=False)


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

    from wm_control.world.visual import ConvEncoder, JEPAPredictor, PatchPredictor, frames_to_input

    torch.manual_seed(cfg.seed)
    enc = ConvEncoder(cfg.image_size, cfg.enc_channels, cfg.latent_dim, cfg.enc_keypoints)
    pred = JEPAPredictor(cfg.latent_dim, cfg.jepa_max_offset)
    patch = PatchPredictor(enc.map_channels, cfg.jepa_max_offset) if cfg.jepa_patch_weight > 0 else None
    target = copy.deepcopy(enc).requires_grad_(False)
    params = list(enc.parameters()) + list(pred.parameters()) + (list(patch.parameters()) if patch else [])
    opt = torch.optim.AdamW(params, lr=cfg.jepa_lr, weight_decay=1e-4)
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
        if patch is not None:
            patch.load_state_dict(st["patch_predictor"])
        target.load_state_dict(st["target"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        rng.bit_generator.state = st["rng"]
        step = int(st["step"])
        tau = momentum_at(step, cfg.jepa_steps, cfg.tau0, cfg.tau1)
        summary_line(f"encoder: resumed at step {step} (momentum {tau:.5f})", tag="train visual", err=True)
    log = JsonLines(out / "train_log.jsonl", "a" if step else "w")
    lens = np.array([len(e.frames) for e in eps])
    total = cfg.jepa_steps
    bar = _bar(total - step, "encoder (JEPA)")
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
            z_tgt, f_tgt = target.forward_with_map(tgt)
        z_ctx, f_ctx = enc.forward_with_map(_mask_blocks(ctx, cfg.mask_blocks, cfg.mask_size, gen))
        z_pred = pred(z_ctx, torch.from_numpy(dt))
        pred_loss = (z_pred - z_tgt).pow(2).sum(-1).mean()
        var_loss, cov_loss = _var_cov(z_ctx)
        loss = pred_loss + cfg.jepa_var_weight * var_loss + cfg.jepa_cov_weight * cov_loss
        if patch is not None:  # every cell of the target frame's feature map, from the context's (I-JEPA style)
            f_t = torch.nn.functional.layer_norm(f_tgt.permute(0, 2, 3, 1), f_tgt.shape[1:2]).permute(0, 3, 1, 2)
            patch_loss = (patch(f_ctx, torch.from_numpy(dt)) - f_t).pow(2).mean()
            cells = f_ctx.permute(0, 2, 3, 1).reshape(-1, f_ctx.shape[1])
            patch_var = (1.0 - (cells.var(0) + 1e-4).sqrt()).clamp(min=0).mean()  # no collapse of the map
            loss = loss + cfg.jepa_patch_weight * (patch_loss + patch_var)
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
                   "latent_norm": float(z_tgt.norm(dim=-1).mean()),
                   **({"patch_loss": patch_loss.item()} if patch is not None else {})}
            log.write(**rec)
            bar.set_postfix(loss=f"{loss.item():.4f}", std=f"{rec['latent_std_mean']:.3f}")
        bar.update(1)
        if step % cfg.ckpt_every == 0 or step == stop:
            torch.save({"encoder": enc.state_dict(), "predictor": pred.state_dict(), "target": target.state_dict(),
                        "opt": opt.state_dict(), "gen": gen.get_state(), "rng": rng.bit_generator.state,
                        "step": step, **({"patch_predictor": patch.state_dict()} if patch else {})}, state_path)
    bar.close()
    log.close()
    if step < total:
        return {"seconds": time.time() - t0, "final": rec, "stopped_at": step}
    torch.save(target.state_dict(), out / "encoder.pt")
    if rec and rec["latent_std_mean"] < 1e-3:
        summary_line("WARNING: the encoder's latents have collapsed (std < 1e-3): more data or a slower momentum "
                     "schedule", tag="train visual", err=True)
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


def ridge_fit(z: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """(Dz + 1, k): the linear probe (ridge regression with a bias) from latents ``z`` to targets ``y``;
    :func:`ridge_apply` reads it."""
    X = np.c_[z, np.ones(len(z))]
    return np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y)


def ridge_apply(w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The probe ``w`` of :func:`ridge_fit` on latents ``z`` (..., Dz)."""
    return z @ w[:-1] + w[-1]


def probe_r2(z_tr: np.ndarray, y_tr: np.ndarray, z_te: np.ndarray, y_te: np.ndarray,
             groups: dict[str, slice], ridge: float = 1e-2) -> dict[str, float | None]:
    """Linear probe (ridge) from latents to targets; on the test set, R^2 pooled over each group of
    target columns (pooled, so a column with little held-out variance cannot dominate)."""
    pred = ridge_apply(ridge_fit(z_tr, y_tr, ridge), z_te)
    ss_res = ((pred - y_te) ** 2).sum(0)
    ss_tot = ((y_te - y_te.mean(0)) ** 2).sum(0)
    out: dict[str, float | None] = {}
    for name, cols in groups.items():
        tot = float(ss_tot[cols].sum())
        out[name] = 1.0 - float(ss_res[cols].sum()) / tot if ss_tot[cols].size and tot > 0 else None
    return out


def probe_targets(e: VideoEpisode, with_object: bool = False) -> np.ndarray:
    """What the linear probe reads off the latent: joint angles (cos, sin), the goal's xy (when logged)
    and, ``with_object``, the object's xy (a ground-truth label)."""
    cols = [np.cos(e.q), np.sin(e.q)]
    if e.goal is not None:
        cols.append(e.goal[:, :2])
    if with_object:
        cols.append(e.object)
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
    bar = _bar(cfg.decoder_steps, "decoder")
    t0 = time.time()
    log = JsonLines(out / "train_log.jsonl", "a")
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
        bar.update(1)
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
    bar = _bar(cfg.lam_steps, "latent actions")
    log = JsonLines(out / "train_log.jsonl", "a")
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
        bar.update(1)
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
    bar = _bar(cfg.teacher_steps, name)
    log = JsonLines(out / "train_log.jsonl", "a")
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
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.update(1)
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
    bar = _bar(total, name)
    log = JsonLines(out / "train_log.jsonl", "a")
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
            bar.set_postfix(stage=stage, loss=f"{loss.item():.3f}")
        bar.update(1)
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
    bar = _bar(cfg.align_steps, "align actions")
    log = JsonLines(out / "train_log.jsonl", "a")
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
            bar.set_postfix(err=f"{loss.item():.3f}")
        bar.update(1)
    bar.close()
    log.close()
    student.requires_grad_(True)
    return {"rollout_error_before_alignment": first, "rollout_error_after": loss.item()}
