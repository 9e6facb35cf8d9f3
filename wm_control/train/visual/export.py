"""The visual world model's bundle: its runtime graphs (encoder, student step, action adapter, decoder)
and the manifest sections the ``world_model`` node reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wm_control.train.onnx import export_onnx
from wm_control.train.visual.pipeline import VisualModels, load_visual


def export_visual_graphs(vm: VisualModels, tmp: Path, n_joints: int) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The runtime graphs: encoder, student_step (static shapes, batch 1), action_adapter, decoder."""
    import torch

    from wm_control.world.visual import ExportedDecoder, ExportedEncoder, ExportedStudentStep

    cfg, s = vm.cfg, vm.student
    S, Dz, Da = cfg.image_size, cfg.latent_dim, cfg.action_dim
    graphs: dict[str, tuple[Path, dict[str, Any]]] = {}
    p = tmp / "encoder.onnx"
    io = export_onnx(ExportedEncoder(vm.encoder, torch.from_numpy(vm.mean), torch.from_numpy(vm.std)),
                     (torch.zeros(1, S, S, 3, dtype=torch.uint8),), p, ["frame"], ["latent"])
    graphs["encoder"] = (p, {**io, "description": "RGB frame at model resolution -> normalised JEPA latent"})
    k, v, age = s.empty_cache(1)
    p = tmp / "student_step.onnx"
    io = export_onnx(ExportedStudentStep(s),
                     (torch.zeros(1, Dz), torch.zeros(1, Da), k, v, age, torch.zeros(1, dtype=torch.long)),
                     p, ["latent", "action", "k_cache", "v_cache", "key_age", "write_pos"],
                     ["next_latent", "k_cache_out", "v_cache_out", "key_age_out"])
    graphs["student_step"] = (p, {
        **io, "window": s.window, "layers": s.n_layers, "heads": s.heads, "head_dim": s.head_dim,
        "description": "one frame through the causal student; the KV cache is a ring of `window` slots: "
                       "write_pos = frame index mod window; key_age starts at 1e4 (empty)"})
    p = tmp / "action_adapter.onnx"
    io = export_onnx(vm.adapter, (torch.zeros(1, Dz), torch.zeros(1, Dz), torch.zeros(1, n_joints)), p,
                     ["latent_prev", "latent", "command"], ["action"],
                     {"latent_prev": {0: "batch"}, "latent": {0: "batch"}, "command": {0: "batch"},
                      "action": {0: "batch"}})
    graphs["action_adapter"] = (p, {**io, "description": "joint position command (bundle joint order, rad) -> "
                                                         "latent action"})
    p = tmp / "decoder.onnx"
    io = export_onnx(ExportedDecoder(vm.decoder), (torch.zeros(2, Dz),), p, ["latent"], ["frame"],
                     {"latent": {0: "batch"}, "frame": {0: "batch"}})
    graphs["decoder"] = (p, {**io, "description": "normalised latent -> RGB frame (for people: previews)"})
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
        if cfg.robot_config:  # the robot's name, rate, interface, camera and goal kind, and its limits
            from wm_control.robot import load_robot_config

            rc = load_robot_config(cfg.robot_config)
            lim = rc.position_limits()
            order = [rc.joint_names.index(j) for j in names]
            robot = {**rc.manifest(), "joint_names": names,
                     "position_limits": None if lim is None else [[lim[0][i], lim[1][i]] for i in order]}
        else:
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
