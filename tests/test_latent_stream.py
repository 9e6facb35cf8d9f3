"""The latents a controller receives (control/latents.py): checked, in capture order, looked up by instant as
training paired them (each control step sees the latest frame captured at or before it)."""

import numpy as np

from wm_control.control.latents import LatentStream
from wm_control.control.policy import LatentInput

SPEC = LatentInput("ab" * 32, 3, 25.0)


def z(v):
    return np.full(3, v, np.float32)


def test_check_names_why_a_latent_is_dropped():
    s = LatentStream(SPEC)
    assert s.check("cd" * 32, z(0), 1.0, 1.0, 0.5) == "model"
    assert s.check(SPEC.bundle_id, np.zeros(4), 1.0, 1.0, 0.5) == "malformed"
    assert s.check(SPEC.bundle_id, [0.0, np.nan, 0.0], 1.0, 1.0, 0.5) == "malformed"
    assert s.check(SPEC.bundle_id, z(0), 2.0, 1.0, 0.5) == "future"
    assert s.check(SPEC.bundle_id, z(0), float("inf"), 1.0, 0.5) == "future"
    stamp, got = s.check(SPEC.bundle_id, [1, 2, 3], 1.2, 1.0, 0.5)
    assert stamp == 1.2 and got.dtype == np.float32 and got.tolist() == [1, 2, 3]


def test_capture_order_repeats_and_a_restarted_stream():
    s = LatentStream(SPEC)
    assert s.add(1.00, z(1)) is None and s.add(1.04, z(2)) is None
    assert s.add(1.04, z(2)) is None and len(s.items) == 2  # the same frame's latent again: nothing new
    assert s.add(1.02, z(9)) == "out_of_order" and len(s.items) == 2
    assert s.add(0.0, z(0)) is None and [st for st, _ in s.items] == [0.0]  # a second back: the stream restarted


def test_the_latent_of_an_instant_its_fallbacks_and_a_window_on_the_grid():
    s = LatentStream(SPEC)
    assert s.for_tick(1.0, 0.15)[2] == "missing" and not s.covers(1.0, 0.04)
    s.add(1.00, z(1))
    s.add(1.04, z(2))
    assert s.for_tick(1.039, 0.15)[0].tolist() == z(1).tolist()  # the frame at 1.04 was not yet captured
    got, stamp, why = s.for_tick(1.06, 0.15)
    assert why is None and stamp == 1.04 and got[0] == 2
    assert s.for_tick(1.25, 0.15)[1:] == (1.04, "stale")
    assert s.covers(1.06, 0.04) and not s.covers(1.09, 0.04)  # sim time: the frame of 1.08 has not come
    w = s.window(np.array([0.96, 0.98, 1.00, 1.02, 1.04, 1.06]))
    assert w[:, 0].tolist() == [1, 1, 1, 1, 2, 2]  # before the first: the first, as a history repeats its start
