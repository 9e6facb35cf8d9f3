"""``wm-control bench transport``: round trips between two processes, and timer accuracy.

An echo process republishes every sample it receives (raw CDR, no decode) on a reply topic; this
process publishes at 100 Hz from an absolute-deadline timer, decodes the replies and measures the
round trip (publish -> echo -> decoded here) for a JointState and a 96x96 rgb8 Image. The same
timer's firings give the achieved rate and the period error. It measures the dds backend (Cyclone DDS
on loopback): both nodes are made on it whatever ``WM_BACKEND`` says.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from wm_control.messages import convert as cv
from wm_control.report import machine, stats
from wm_control.ros import qos
from wm_control.ros.api import make_node


def _echo(duration: float) -> None:
    node = make_node("bench_echo", "dds")
    pubs = {}
    for name, typ in (("js", "sensor_msgs/msg/JointState"), ("img", "sensor_msgs/msg/Image")):
        pubs[name] = node.create_publisher(typ, f"/bench/{name}/pong", qos.SENSOR_DATA)
        node.create_subscription(typ, f"/bench/{name}/ping",
                                 lambda d, _i, p=pubs[name]: p.publish_raw(d), qos.SENSOR_DATA, raw=True,
                                 with_info=True)
    print("echo ready", flush=True)
    node.spin(timeout=duration)


def _stats(x: np.ndarray) -> dict:
    """Seconds -> ``{"n", "p50", "p90", "p99", "max", "mean"}`` in ms (``{"n": 0}`` when empty)."""
    return {"n": int(x.size), **stats(1e3 * x, with_max=True)} if x.size else {"n": 0}


def bench_transport(duration: float = 5.0, rate: float = 100.0, warmup: float = 1.0) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    echo = subprocess.Popen([sys.executable, "-m", "wm_control.bench.transport", "--echo",
                             str(2 * duration + warmup + 10)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert echo.stdout is not None
        echo.stdout.readline()
        node = make_node("bench_transport", "dds")
        results = {}
        for name, typ in (("joint_state", "sensor_msgs/msg/JointState"), ("image_96x96_rgb8", "sensor_msgs/msg/Image")):
            short = "js" if name == "joint_state" else "img"
            pub = node.create_publisher(typ, f"/bench/{short}/ping", qos.SENSOR_DATA)
            sent: dict[int, float] = {}
            rtt: list[float] = []

            def on_pong(msg, _sent=sent, _rtt=rtt) -> None:
                k = msg.header.stamp.nanosec
                if k in _sent:
                    _rtt.append(time.perf_counter() - _sent.pop(k))

            node.create_subscription(typ, f"/bench/{short}/pong", on_pong, qos.SENSOR_DATA)
            node.spin(until=lambda p=pub: p.matched() > 0, timeout=10)
            if short == "js":
                msg = cv.make_joint_state(node.msg, 0.0, [f"joint{i}" for i in range(7)], np.zeros(7), np.zeros(7),
                                          np.zeros(7))
            else:
                rgb = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
                msg = cv.make_image(node.msg, 0.0, rgb)
            counter = [0]

            def tick(_pub=pub, _msg=msg, _sent=sent) -> None:
                counter[0] += 1
                _msg.header.stamp.nanosec = counter[0]
                _sent[counter[0]] = time.perf_counter()
                _pub.publish(_msg)

            timer = node.create_timer(1.0 / rate, tick)
            fires: list[float] = []
            orig = timer.callback
            timer.callback = lambda _o=orig: (fires.append(time.monotonic()), _o())
            node.spin(timeout=warmup)
            rtt.clear()
            fires.clear()
            node.spin(timeout=duration)
            timer.cancel()
            node.spin(timeout=0.2)
            f = np.asarray(fires)
            periods = np.diff(f)
            results[name] = {
                "round_trip_ms": _stats(np.asarray(rtt)),
                "sent": int(counter[0]), "lost_or_late": int(len(sent)),
                "payload_bytes": int(len(node.registry.serialize(msg, typ))),
            }
            results.setdefault("timer", {})[name] = {
                "target_hz": rate, "achieved_hz": float((len(f) - 1) / (f[-1] - f[0])) if len(f) > 1 else 0.0,
                "period_error_ms": _stats(np.abs(periods - 1.0 / rate)),
                "missed_ticks": int(timer.missed),
            }
        node.destroy()
    finally:
        echo.terminate()
        echo.wait(5)
    t = results.pop("timer")
    worst = max(t.values(), key=lambda v: v["period_error_ms"].get("p99", 0))
    out = {
        "benchmark": "transport", "backend": "dds (Cyclone DDS, loopback)", "duration_s": duration,
        "machine": machine(python=True),
        "round_trip": results,
        "timer_100hz": worst | {"per_run": t},
        "aims": {"image_round_trip_p99_ms": 2.0, "timer_period_error_p99_ms": 0.5},
    }
    img = results["image_96x96_rgb8"]["round_trip_ms"]["p99"]
    err = worst["period_error_ms"]["p99"]
    out["meets_aims"] = {"image_round_trip": img < 2.0, "timer_period_error": err < 0.5}
    print(f"JointState round trip p50 {results['joint_state']['round_trip_ms']['p50']:.3f} ms, "
          f"p99 {results['joint_state']['round_trip_ms']['p99']:.3f} ms")
    print(f"Image 96x96 rgb8 round trip p50 {results['image_96x96_rgb8']['round_trip_ms']['p50']:.3f} ms, "
          f"p99 {img:.3f} ms (aim < 2 ms)")
    print(f"100 Hz timer: achieved {worst['achieved_hz']:.2f} Hz, period error p99 {err:.3f} ms (aim < 0.5 ms)")
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--echo"]:
        _echo(float(sys.argv[2]))
