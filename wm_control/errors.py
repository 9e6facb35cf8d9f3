"""The one error a user can fix: its message is one line that says what to do.

``wm-control`` prints a :class:`UserError` (and the other expected errors: bad arguments, a bad bundle,
a bad bag) as one line and exits 2; any other exception is one line naming its type, and the
traceback only with ``-v``.
"""

from __future__ import annotations


class UserError(RuntimeError):
    """Something the user can fix (a path, a topic, a parameter): the message says what and how."""
