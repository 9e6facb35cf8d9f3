"""``wm-control eval visual``: the visual world model on held-out camera bags (JSON + PNG).

* **prediction error vs horizon** for the teacher and the student: from ``context`` true frames, the
  next ``horizon`` frames under the latent actions the LAM reads off the held-out video; latent RMSE
  (normalised units, per dimension) and PSNR of the decoded prediction against the true frame (with
  the decoder's own ceiling: the true latent decoded, and the "nothing moves" baseline).
* **speed on this machine** (ONNX Runtime, one thread, the same graphs as the bundle's): frames per
  second of the student streaming (encode + one cached step) and of the teacher (encode + one
  bidirectional pass over context + horizon, which it must redo for every new frame), and the
  student's step with its KV cache against recomputing the whole ``window``-frame context.
* **latent vs real actions**, all driven by the recorded joint commands: the student trained on all
  bags with latent actions and aligned on the labelled ``labelled_fraction`` (the adapter turns
  commands into latent actions), one trained with real actions on 100% of the bags, and one trained
  on the labelled episodes alone (the last two are trained here when missing).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.report import figure_path, pyplot, save_figure, summary_line, write_json


def _windows(lat: list[np.ndarray], T: int, stride: int) -> list[tuple[int, int]]:
    return [(e, s) for e, z in enumerate(lat) for s in range(0, len(z) - T + 1, stride)]


def _stack(arrs: list[np.ndarray], idx: list[tuple[int, int]], T: int) -> np.ndarray:
    return np.stack([arrs[e][s:s + T] for e, s in idx])


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image: a, b uint8 (..., H, W, 3)."""
    mse = ((a.astype(np.float32) - b.astype(np.float32)) / 255.0) ** 2
    mse = mse.reshape(*mse.shape[:-3], -1).mean(-1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def _time(fn, n: int, warm: int = 10) -> float:
    for _ in range(warm):
        fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def speed(vm, n: int = 200) -> dict[str, Any]:
    """ORT (CPU, 1 thread) timings of the graphs as the runtime calls them."""
    import torch

    from wm_control.train.onnx import export_onnx
    from wm_control.train.visual import export_visual_graphs
    from wm_control.world.bundle import Session
    from wm_control.world.visual import ExportedStudentWindow, ExportedTeacher

    cfg = vm.cfg
    C, H, W, Dz, Da = cfg.context, cfg.horizon, cfg.window, cfg.latent_dim, cfg.action_dim
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        graphs = export_visual_graphs(vm, tmp, len(vm.meta["joint_names"]))
        export_onnx(ExportedTeacher(vm.teacher, H), (torch.zeros(1, C, Dz), torch.zeros(1, C + H, Da)),
                    tmp / "teacher.onnx", ["context", "actions"], ["future"])
        export_onnx(ExportedStudentWindow(vm.student), (torch.zeros(1, W, Dz), torch.zeros(1, W, Da)),
                    tmp / "student_window.onnx", ["latents", "actions"], ["next_latent"])
        sess = {name: Session(p, spec, "cpu", warmup=5) for name, (p, spec) in graphs.items()}
        sess["teacher"] = Session(tmp / "teacher.onnx", {}, "cpu", warmup=5)
        sess["student_window"] = Session(tmp / "student_window.onnx", {}, "cpu", warmup=5)
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 255, (1, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        k, v, age = (x.numpy() for x in vm.student.empty_cache(1))
        age[:] = np.arange(W)[::-1]  # a full cache
        z1, a1 = np.zeros((1, Dz), np.float32), np.zeros((1, Da), np.float32)
        t_enc = _time(lambda: sess["encoder"].run(frame=frame), n)
        t_step = _time(lambda: sess["student_step"].run(latent=z1, action=a1, k_cache=k, v_cache=v, key_age=age,
                                                        write_pos=np.array([3], np.int64)), n)
        t_adapt = _time(lambda: sess["action_adapter"].run(latent_prev=z1, latent=z1,
                                                           command=np.zeros((1, len(vm.meta["joint_names"])),
                                                                            np.float32)), n)
        zw, aw = np.zeros((1, W, Dz), np.float32), np.zeros((1, W, Da), np.float32)
        t_window = _time(lambda: sess["student_window"].run(latents=zw, actions=aw), n)
        zc, ac = np.zeros((1, C, Dz), np.float32), np.zeros((1, C + H, Da), np.float32)
        t_teacher = _time(lambda: sess["teacher"].run(context=zc, actions=ac), max(20, n // 4))
        t_dec = _time(lambda: sess["decoder"].run(latent=np.zeros((8, Dz), np.float32)), max(20, n // 4))
    student_frame = t_enc + t_adapt + t_step
    teacher_frame = t_enc + t_teacher
    return {"threads": 1, "provider": "CPUExecutionProvider",
            "encoder_ms": t_enc * 1e3, "adapter_ms": t_adapt * 1e3, "student_step_ms": t_step * 1e3,
            "student_window_ms": t_window * 1e3, "teacher_pass_ms": t_teacher * 1e3, "decode_8_frames_ms": t_dec * 1e3,
            "student_fps": 1.0 / student_frame, "teacher_fps": 1.0 / teacher_frame,
            "student_vs_teacher_speedup": teacher_frame / student_frame,
            "kv_cache": {"step_ms": t_step * 1e3, "recompute_window_ms": t_window * 1e3, "window": W,
                         "speedup": t_window / t_step},
            "note": "per frame: student = encode + adapter + one cached step; teacher = encode + one bidirectional "
                    f"pass over {C} context + {H} predicted frames (it cannot reuse work across frames)"}


def evaluate_visual(ckpt: str | Path = "runs/visual", json_path: str | Path | None = None,
                    variants: dict[str, str | Path] | None = None, train_missing: bool = True,
                    stride: int = 8, speed_iters: int = 200) -> dict[str, Any]:
    import torch

    from wm_control.train.visual import (
        encode_all,
        latent_actions,
        load_dynamics,
        load_video,
        load_visual,
        train_dynamics,
    )
    from wm_control.world.visual import rollout_commands

    vm = load_visual(ckpt)
    cfg = vm.cfg
    C, H = cfg.context, cfg.horizon
    T = C + H
    if vm.meta.get("heldout"):
        held, _ = load_video(vm.meta["heldout"], cfg)
    else:  # trained from a robot config's one folder: the episodes train_visual held out of it
        from wm_control.train.visual.pipeline import split_heldout

        held = split_heldout(load_video(vm.meta["data"], cfg)[0])[1]
    lat = [((z - vm.mean) / vm.std).astype(np.float32) for z in encode_all(vm.encoder, [e.frames for e in held])]
    act = latent_actions(vm.lam, lat)
    idx = _windows(lat, T, stride)
    if not idx:
        raise ValueError(f"no held-out episode has {T} frames")
    Z = torch.from_numpy(_stack(lat, idx, T))
    A = torch.from_numpy(_stack(act, idx, T))
    U = torch.from_numpy(_stack([e.command for e in held], idx, T))
    F = _stack([e.frames for e in held], idx, T)[:, C:]
    truth = Z[:, C:]
    res: dict[str, Any] = {"checkpoint": str(ckpt), "heldout": vm.meta["heldout"], "windows": len(idx),
                           "context": C, "horizon": H, "frame_rate": cfg.frame_rate, "image_size": cfg.image_size,
                           "encoder_probe_r2": vm.meta["metrics"].get("encoder", {}).get("probe_r2")}

    def decode(z):
        with torch.no_grad():
            img = vm.decoder(z.reshape(-1, cfg.latent_dim)).permute(0, 2, 3, 1).numpy()
        return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8).reshape(*z.shape[:2], *img.shape[1:])

    # the object's xy read back from a latent by the linear probe fitted on the training frames (a task whose
    # bags carry the simulator's object labels): what a predicted latent says about where the object will be
    probe, O = None, None
    if held and all(e.object is not None for e in held):
        from wm_control.train.visual import ridge_apply, ridge_fit

        train_eps = load_video(vm.meta["data"], cfg)[0]
        zt = [((z - vm.mean) / vm.std) for z in encode_all(vm.encoder, [e.frames for e in train_eps])]
        probe = ridge_fit(np.concatenate(zt), np.concatenate([e.object for e in train_eps]))
        O = _stack([e.object for e in held], idx, T)[:, C:]  # (B, H, 2) true object xy of the predicted frames

    def curve(pred):
        rmse = (pred - truth).pow(2).mean(-1).sqrt().mean(0).numpy()
        psnr = _psnr(decode(pred), F).mean(0)
        out = {"latent_rmse": rmse.tolist(), "psnr_db": psnr.tolist(), "latent_rmse_mean": float(rmse.mean()),
               f"latent_rmse_at_{H}": float(rmse[-1]), "psnr_mean_db": float(psnr.mean())}
        if probe is not None:
            err = 100 * np.linalg.norm(ridge_apply(probe, pred.numpy()) - O, axis=-1)  # (B, H) cm
            med = np.median(err, axis=0)
            out.update({"object_error_cm_median": med.tolist(), f"object_error_cm_at_{H}": float(med[-1])})
        return out

    with torch.no_grad():
        p_teacher = vm.teacher.predict(Z[:, :C], A, H)
        p_student = vm.student.rollout(Z[:, :C], A[:, :T - 1], H)
        p_hold = Z[:, C - 1:C].expand(-1, H, -1)
        p_adapter = rollout_commands(vm.student, vm.adapter, Z[:, :C], U, H)
    res["prediction"] = {"teacher": curve(p_teacher), "student": curve(p_student), "no_motion": curve(p_hold),
                         **({"probe_on_true_latents": curve(truth)} if probe is not None else {}),
                         "decoder_ceiling_psnr_db": float(_psnr(decode(truth), F).mean()),
                         "actions": "latent actions the LAM reads off the held-out video"}
    ps, pt = res["prediction"]["student"], res["prediction"]["teacher"]
    res["prediction"]["student_vs_teacher_error_at_horizon"] = ps[f"latent_rmse_at_{H}"] / pt[f"latent_rmse_at_{H}"]
    summary_line(f"{len(idx)} held-out windows, {C} frames of context, {H} predicted; latent RMSE at {H}: "
                 f"teacher {pt[f'latent_rmse_at_{H}']:.3f}, student {ps[f'latent_rmse_at_{H}']:.3f}, "
                 f"no motion {res['prediction']['no_motion'][f'latent_rmse_at_{H}']:.3f}", tag="eval visual", err=True)
    if probe is not None:
        k = f"object_error_cm_at_{H}"
        pr = res["prediction"]
        summary_line(f"object read from the latent by the probe, median error at {H}: teacher {pr['teacher'][k]:.1f} cm, "
                     f"student {pr['student'][k]:.1f} cm, no motion {pr['no_motion'][k]:.1f} cm, the probe on the true "
                     f"latents {pr['probe_on_true_latents'][k]:.1f} cm", tag="eval visual", err=True)

    # ---- latent vs real actions, all driven by the recorded commands -------------------------------
    out_root = Path(ckpt).parent
    variants = dict(variants or {})
    variants.setdefault("real_all", out_root / f"{Path(ckpt).name}_real_all")
    variants.setdefault("real_labelled", out_root / f"{Path(ckpt).name}_real_labelled")
    comp: dict[str, Any] = {"latent_aligned": {**curve(p_adapter), "actions": "latent (LAM) actions, all bags; the "
                                               f"adapter aligned on {cfg.labelled_fraction:.0%} labelled episodes",
                                               "episodes": vm.meta["episodes"]}}
    for name, path in variants.items():
        path = Path(path)
        if not (path / "checkpoint.yaml").exists():
            if not train_missing:
                continue
            frac = "all" if name == "real_all" else "labelled"
            summary_line(f"training the {name} comparison model into {path}", tag="eval visual", err=True)
            train_dynamics(ckpt, "real", frac, path)
        _, st, meta = load_dynamics(path)
        cn = meta["command_normalizer"]
        Ua = (U - torch.tensor(cn["mean"], dtype=torch.float32)) / torch.tensor(cn["std"], dtype=torch.float32)
        with torch.no_grad():
            p = st.rollout(Z[:, :C], Ua[:, :T - 1], H)
        comp[name] = {**curve(p), "actions": f"real joint commands, {meta['fraction']} episodes",
                      "episodes": meta["episodes"]}
    if "real_all" in comp:
        base = comp["real_all"]["latent_rmse_mean"]
        for v in comp.values():
            v["error_vs_real_all"] = v["latent_rmse_mean"] / base
    res["actions"] = comp
    res["speed"] = speed(vm, speed_iters)
    res["aims"] = _aims(res)
    if json_path:
        write_json(json_path, res)
        plot(res, figure_path(json_path))
        strip_png(vm, Z, A, F, figure_path(json_path, "_frames"), decode)
    return res


def _aims(res: dict[str, Any]) -> dict[str, Any]:
    sp, pr = res["speed"], res["prediction"]
    out = {"student_fps_at_least_100": sp["student_fps"] >= 100,
           "student_3x_faster_than_teacher": sp["student_vs_teacher_speedup"] >= 3,
           "student_error_at_most_1.2x_teacher": pr["student_vs_teacher_error_at_horizon"] <= 1.2,
           "kv_cache_3x_faster_than_recompute": sp["kv_cache"]["speedup"] >= 3}
    a = res.get("actions", {})
    if "real_all" in a and "real_labelled" in a:
        out["latent_within_10pct_of_real_all"] = a["latent_aligned"]["error_vs_real_all"] <= 1.1
        out["latent_better_than_labelled_only"] = \
            a["latent_aligned"]["latent_rmse_mean"] < a["real_labelled"]["latent_rmse_mean"]
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    H = res["horizon"]
    h = np.arange(1, H + 1)
    with_object = "object_error_cm_median" in res["prediction"]["teacher"]
    fig, ax = plt.subplots(1, 5 if with_object else 4, figsize=(24 if with_object else 19, 4.2))
    if with_object:  # the object read back from the predicted latents
        for name, style in (("teacher", "-o"), ("student", "-s"), ("no_motion", ":"), ("probe_on_true_latents", "--")):
            ax[4].plot(h, res["prediction"][name]["object_error_cm_median"], style, ms=3, label=name.replace("_", " "))
        ax[4].set(title="object xy read from the latent (linear probe)", xlabel="frames ahead",
                  ylabel="median error (cm)")
        ax[4].grid(alpha=0.3)
        ax[4].legend(fontsize=8)
    for name, style in (("teacher", "-o"), ("student", "-s"), ("no_motion", ":")):
        c = res["prediction"][name]
        ax[0].plot(h, c["latent_rmse"], style, ms=3, label=name.replace("_", " "))
        ax[1].plot(h, c["psnr_db"], style, ms=3, label=name.replace("_", " "))
    ax[1].axhline(res["prediction"]["decoder_ceiling_psnr_db"], color="gray", ls="--", lw=1, label="decoder ceiling")
    ax[0].set(title="latent error vs horizon (LAM actions)", xlabel="frames ahead", ylabel="RMSE (normalised latent)")
    ax[1].set(title="decoded frames vs horizon", xlabel="frames ahead", ylabel="PSNR (dB)")
    for name, c in res["actions"].items():
        ax[2].plot(h, c["latent_rmse"], "-o", ms=3, label=f"{name.replace('_', ' ')} ({c['episodes']} ep.)")
    ax[2].set(title="driven by joint commands", xlabel="frames ahead", ylabel="RMSE (normalised latent)")
    sp = res["speed"]
    names = ["student\n(cached step)", "student\n(recompute window)", "teacher\n(per frame)"]
    ms = [sp["student_step_ms"], sp["student_window_ms"], sp["teacher_pass_ms"]]
    ax[3].bar(names, ms, color=["tab:green", "tab:orange", "tab:blue"])
    ax[3].set_title(f"per frame (ORT, 1 thread, with the encoder):\nstudent {sp['student_fps']:.0f} fps, "
                    f"teacher {sp['teacher_fps']:.0f} fps", fontsize=10)
    ax[3].set_ylabel("ms (model only)")
    for a in ax[:3]:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    save_figure(fig, path)


def strip_png(vm, Z, A, F, path: Path, decode) -> None:
    """One held-out window: the true frames, the student's and the teacher's decoded predictions."""
    import cv2
    import torch

    C, H = vm.cfg.context, vm.cfg.horizon
    i = len(Z) // 2
    with torch.no_grad():
        ps = decode(vm.student.rollout(Z[i:i + 1, :C], A[i:i + 1, :C + H - 1], H))[0]
        pt = decode(vm.teacher.predict(Z[i:i + 1, :C], A[i:i + 1], H))[0]
    steps = list(range(0, H, max(1, H // 8)))
    rows = [np.concatenate([f[s] for s in steps], 1) for f in (F[i], ps, pt)]
    img = np.concatenate(rows, 0)
    img = cv2.resize(img, (img.shape[1] * 3, img.shape[0] * 3), interpolation=cv2.INTER_NEAREST)
    pad = np.full((img.shape[0], 90, 3), 255, np.uint8)
    for r, label in enumerate(("true", "student", "teacher")):
        cv2.putText(pad, label, (4, int((r + 0.55) * img.shape[0] / 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([pad, img], 1), cv2.COLOR_RGB2BGR))
