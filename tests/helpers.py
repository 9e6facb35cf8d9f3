"""Start wm_control nodes as real processes for tests, and wait on the graph."""

import os
import subprocess
import sys
import threading
import time
from collections import deque


class NodeProcess:
    def __init__(self, node_type: str, *ros_args: str, ready_timeout: float = 30.0):
        self.lines: deque[str] = deque(maxlen=400)
        self.p = subprocess.Popen([sys.executable, "-m", "wm_control", "run", node_type, "--ros-args", *ros_args],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        end = time.monotonic() + ready_timeout
        while not self.ready.wait(0.05):
            if self.p.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"{node_type} did not start:\n" + "\n".join(self.lines))

    def _pump(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip())
            if "]: ready" in line:
                self.ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 10.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(2)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_in_parallel(node_type: str, args: dict, *common: str) -> dict:
    """Start one ``node_type`` process per entry of ``args`` (key -> ros args) at once (their start-ups
    overlap); if one fails, stop those that started and raise."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(args)) as pool:
        futures = {k: pool.submit(NodeProcess, node_type, *a, *common) for k, a in args.items()}
        started = {}
        try:
            for k, f in futures.items():
                started[k] = f.result()
        finally:
            if len(started) < len(futures):
                for p in started.values():
                    p.stop()
    return started
