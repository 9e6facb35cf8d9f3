"""Key presses from the terminal (cbreak mode, non-blocking), only where stdin is a TTY in the foreground."""

from __future__ import annotations

import atexit
import contextlib
import os
import select

from wm_control.teleop.keys import split_keys


def terminal_usable(fd: int = 0) -> tuple[bool, str]:
    """Whether key presses can be read from ``fd``: a TTY whose foreground process group is ours (a node
    started by a launcher in its own session must not touch the launcher's terminal)."""
    try:
        if not os.isatty(fd):
            return False, "stdin is not a TTY"
        if os.tcgetpgrp(fd) != os.getpgrp():
            return False, "stdin is a TTY but this process is not in its foreground"
    except OSError as exc:
        return False, f"stdin cannot be used ({exc})"
    return True, ""


class TerminalKeys:
    """Key presses from a terminal in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts),
    read without blocking. The terminal's settings are restored by :meth:`close` (and at exit)."""

    def __init__(self, fd: int = 0):
        import termios
        import tty

        self.fd = fd
        self._termios = termios
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd, termios.TCSANOW)
        self._closed = False
        atexit.register(self.close)

    def read(self) -> list[str]:
        if self._closed:
            return []
        data = b""
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 1024)
            if not chunk:  # EOF
                break
            data += chunk
            if len(data) > 4096:
                break
        return split_keys(data.decode("utf-8", errors="ignore"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the terminal may be gone at exit
            self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)
