"""Log lines that cannot flood: the first of each kind in full, then a count at most once a period.

A node that warns about every bad message writes megabytes a minute when something sends it bad
messages at 10 kHz. :class:`ThrottledLog` keeps one state per key (a drop reason, say): the first
event is logged as it is; the ones that follow within ``period`` seconds are only counted, and the
count comes out as one summary line once the period has passed, either with the next event of that
key or from :meth:`ThrottledLog.flush`, which a node calls from a timer it already has (so the count
of a burst that has stopped is not lost) and with ``force=True`` when it closes::

    self.warn = ThrottledLog(node.logger, period=5.0, first="dropped frame ({key}): {message}",
                             summary="dropped {count} more frames ({key}) in the last {seconds:.1f} s; "
                                     "the latest: {message}")
    self.warn.log("stale", "stamped %.3f s ago", age)   # -> "dropped frame (stale): stamped 0.412 s ago"
    ...                                                 # 522 more within 5 s: counted, not logged
    self.warn.flush()                                   # -> "dropped 522 more frames (stale) in the last 5.0 s; ..."

Messages are %-formatted lazily (only the lines that are written). Keys should be a small fixed set
(reasons, not values); the state of a key is a few numbers. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ThrottledLog"]


@dataclass
class _KeyState:
    last: float  # clock time of the last line written for this key
    pending: int = 0  # events counted since then, not logged
    msg: str = ""  # the latest counted event, unformatted
    args: tuple[Any, ...] = ()
    level: int = logging.WARNING  # of the latest counted event: its summary's level


class ThrottledLog:
    """At most one line per ``period`` seconds per key; every event is still counted.

    ``first`` and ``summary`` are :meth:`str.format` templates: ``first`` gets ``key`` and ``message``
    (the event's ``msg % args``), ``summary`` also ``count`` (events since the last line) and ``seconds``
    (the time they span). ``clock`` is monotonic seconds (injectable for tests).
    """

    def __init__(self, logger: logging.Logger, period: float = 5.0, level: int = logging.WARNING,
                 first: str = "{message}",
                 summary: str = "{key}: {count} more in the last {seconds:.1f} s; the latest: {message}",
                 clock: Callable[[], float] = time.monotonic):
        if not period >= 0:
            raise ValueError(f"period must be >= 0 seconds, got {period}")
        self.logger, self.period, self.level = logger, float(period), level
        self.first, self.summary, self.clock = first, summary, clock
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()
        self.lines = 0  # lines written (first lines and summaries)

    def log(self, key: str, msg: str, *args: Any, level: int | None = None) -> bool:
        """Count one event of ``key``; write it (True) unless a line of this key was written less than
        ``period`` ago, in which case it is counted for the next summary (False)."""
        now = self.clock()
        lvl = self.level if level is None else level
        with self._lock:
            st = self._keys.get(key)
            if st is None or (st.pending == 0 and now - st.last >= self.period):
                self._keys[key] = _KeyState(now)
                line = self.first.format(key=key, message=_format(msg, args))
            else:
                st.pending += 1
                st.msg, st.args, st.level = msg, args, lvl
                if now - st.last < self.period:
                    return False
                line = self._summary_locked(key, st, now)
            self.lines += 1
        self.logger.log(lvl, "%s", line)
        return True

    def warning(self, key: str, msg: str, *args: Any) -> bool:
        return self.log(key, msg, *args, level=logging.WARNING)

    def info(self, key: str, msg: str, *args: Any) -> bool:
        return self.log(key, msg, *args, level=logging.INFO)

    def flush(self, force: bool = False) -> int:
        """Write the summary of every key with counted events whose period has passed (``force``: of
        every key with counted events, e.g. at shutdown). Returns the number of lines written."""
        now = self.clock()
        with self._lock:
            lines = [(st.level, self._summary_locked(k, st, now)) for k, st in self._keys.items()
                     if st.pending and (force or now - st.last >= self.period)]
            self.lines += len(lines)
        for lvl, line in lines:
            self.logger.log(lvl, "%s", line)
        return len(lines)

    def pending(self, key: str) -> int:
        """Events of ``key`` counted since its last line."""
        with self._lock:
            st = self._keys.get(key)
            return st.pending if st is not None else 0

    def _summary_locked(self, key: str, st: _KeyState, now: float) -> str:
        line = self.summary.format(key=key, count=st.pending, seconds=now - st.last,
                                   message=_format(st.msg, st.args))
        st.last, st.pending, st.msg, st.args = now, 0, "", ()
        return line


def _format(msg: str, args: tuple[Any, ...]) -> str:
    if not args:
        return str(msg)
    try:
        return msg % args
    except (TypeError, ValueError):  # a bad format must not take a node down: show what was given
        return f"{msg} {args!r}"
