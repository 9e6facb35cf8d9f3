"""``wm-control bench transport|loop|ensemble|planner|visual``: speed, measured, as JSON (never a test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wm_control.cli.flags import choose, parse, write_json
from wm_control.errors import UserError

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
WHAT = {
    "transport": "round-trip latency and timer accuracy between two processes",
    "loop": "the running graph: camera-to-command latency, control rate, inference time, CPU per node",
    "ensemble": "one ONNX call of all members x 256 candidates, as the planner queries it",
    "planner": "plan latency at 1 and 2 threads, and the running graph's plan and command rates",
    "visual": "the world model's runtime per frame as the node runs it (observe, preview)",
}


@dataclass
class BenchOptions:
    json: str | None = None
    """Write the result here (it is printed too)."""
    device: Device = "auto"
    """Where the models run."""


@dataclass
class TransportOptions:
    """Round-trip latency (joint state, a 96x96 image) and a 100 Hz timer between two processes."""

    json: str | None = None
    """Write the result here (it is printed too)."""
    duration: float = 10.0
    """Seconds of measurement."""


@dataclass
class LoopOptions(BenchOptions):
    """The running graph (sim_robot, camera_ingest, policy) on this machine."""

    bundle: str = "bundles/bc"
    duration: float = 10.0
    """Seconds of measurement (after a warm-up)."""
    realtime_priority: int = 0
    """SCHED_FIFO priority for the policy node (0: none; needs the right to use it)."""
    visual: str | None = None
    """The visual world model bundle for a policy that sees the camera (default: the one the bundle recorded);
    the graph then has world_model too, and camera-to-command is measured on the frame whose latent the
    command used."""


@dataclass
class EnsembleOptions(BenchOptions):
    """One ONNX call of all members x 256 candidates."""

    bundle: str = "bundles/ensemble"
    threads: int = 1
    """ONNX Runtime intra-op threads."""


@dataclass
class PlannerOptions(BenchOptions):
    """Plan latency (the ensemble's members x samples x horizon) and the running graph."""

    bundle: str = "bundles/ensemble"
    duration: float = 10.0
    """Seconds of the running graph."""
    samples: int = 256
    """Candidates per plan (the planner's samples)."""
    horizon: int = 16
    """Control steps planned."""


@dataclass
class VisualOptions(BenchOptions):
    """The visual world model per frame."""

    bundle: str = "bundles/visual"


def cmd_bench(argv: list[str]) -> int:
    what, argv = choose("wm-control bench", argv, WHAT)
    prog = f"wm-control bench {what}"
    if what == "transport":
        from wm_control.bench.transport import bench_transport

        t, _ = parse(prog, argv, TransportOptions)
        res, path = bench_transport(duration=t.duration), t.json
    elif what == "loop":
        from wm_control.bench.loop import bench_loop

        lo, _ = parse(prog, argv, LoopOptions)
        try:
            res = bench_loop(lo.bundle, duration=lo.duration, device=lo.device,
                             realtime_priority=lo.realtime_priority, visual=lo.visual)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        path = lo.json
    elif what == "ensemble":
        from wm_control.bench.ensemble import bench_ensemble

        e, _ = parse(prog, argv, EnsembleOptions)
        res, path = bench_ensemble(e.bundle, device=e.device, threads=e.threads), e.json
    elif what == "planner":
        from wm_control.bench.planner import bench_planner

        p, _ = parse(prog, argv, PlannerOptions)
        res, path = bench_planner(p.bundle, samples=p.samples, horizon=p.horizon, device=p.device,
                                  duration=p.duration), p.json
    else:
        from wm_control.bench.visual import bench_visual

        v, _ = parse(prog, argv, VisualOptions)
        res, path = bench_visual(v.bundle, device=v.device), v.json
    write_json(path, res)
    return 0
