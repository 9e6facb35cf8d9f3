"""The keyboard: per-joint +/- keys and the keys for mode, e-stop, reset, speed and quit (:class:`KeyMap`,
:func:`key_action`); terminal input and OpenCV window codes -> key presses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ESC = "\x1b"
KEY_NAMES = {" ": "space", ESC: "Esc", "\t": "Tab", "\r": "Enter", "\n": "Enter"}


def key_name(k: str) -> str:
    return KEY_NAMES.get(k, k)


@dataclass(frozen=True)
class KeyAction:
    """What one key press asks for. ``kind``: joint | mode | estop | reset | speed | quit."""

    kind: str
    joint: int = -1
    sign: int = 0
    factor: float = 1.0


@dataclass
class KeyMap:
    plus: str = "qwertyu"
    """Joint i moves + with plus[i]."""
    minus: str = "asdfghj"
    """Joint i moves - with minus[i]."""
    mode: str = "m"
    """Toggle teleop <-> hold."""
    estop: str = " "
    """Latch the e-stop (space)."""
    reset: str = "c"
    """Clear the e-stop (/wm/estop false, then /wm/estop_reset)."""
    faster: str = "+="
    slower: str = "-_"
    quit: str = ESC
    speed_factor: float = 1.5

    def __post_init__(self) -> None:
        if len(self.plus) != len(self.minus):
            raise ValueError(f"plus keys {self.plus!r} and minus keys {self.minus!r} must have the same length")
        seen: dict[str, str] = {}
        for what in ("plus", "minus", "mode", "estop", "reset", "faster", "slower", "quit"):
            for k in getattr(self, what):
                k = k.lower()
                if k in seen:
                    raise ValueError(f"key {key_name(k)!r} is bound twice ({seen[k]} and {what})")
                seen[k] = what
        if not self.speed_factor > 1:
            raise ValueError(f"speed_factor must be > 1, got {self.speed_factor}")

    def help(self, n_joints: int, names: Sequence[str] | None = None) -> str:
        names = list(names) if names is not None else [f"joint {i}" for i in range(n_joints)]
        lines = [f"  {names[i]}: {self.plus[i]} (+) / {self.minus[i]} (-)"
                 for i in range(min(n_joints, len(self.plus)))]
        if n_joints > len(self.plus):
            lines.append(f"  ({n_joints - len(self.plus)} more joints have no keys)")
        ks = lambda s: "/".join(key_name(k) for k in s)  # noqa: E731
        lines.append(f"  {ks(self.mode)}: teleop <-> hold   {ks(self.estop)}: E-STOP   {ks(self.reset)}: clear e-stop")
        lines.append(f"  {ks(self.faster)}: faster   {ks(self.slower)}: slower   {ks(self.quit)}: quit")
        return "\n".join(lines)


def key_action(key: str, keymap: KeyMap, n_joints: int) -> KeyAction | None:
    """The action of one key (a one-character string), or None when it is not bound."""
    if not key or len(key) != 1:
        return None
    k = key.lower()
    for keys, sign in ((keymap.plus.lower(), +1), (keymap.minus.lower(), -1)):
        if k in keys:
            i = keys.index(k)
            return KeyAction("joint", i, sign) if i < n_joints else None
    for kind in ("mode", "estop", "reset", "quit"):
        if k in getattr(keymap, kind).lower():
            return KeyAction(kind)
    if k in keymap.faster:
        return KeyAction("speed", factor=keymap.speed_factor)
    if k in keymap.slower:
        return KeyAction("speed", factor=1.0 / keymap.speed_factor)
    return None


def split_keys(text: str) -> list[str]:
    """Terminal input -> single key presses. Escape sequences (arrows, function keys: ESC [ ... or ESC O x)
    are dropped; a lone ESC is the Esc key."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ESC and i + 1 < len(text) and text[i + 1] in "[O":
            j = i + 2
            if text[i + 1] == "O":
                i = j + 1  # SS3: one final character
                continue
            while j < len(text) and not ("\x40" <= text[j] <= "\x7e"):
                j += 1  # CSI parameters
            i = j + 1
            continue
        keys.append(c)
        i += 1
    return keys


def window_key(code: int) -> str | None:
    """A ``cv2.waitKey`` code -> a one-character key (None for none / non-character keys)."""
    c = 255 if code is None or code < 0 else code & 0xFF
    return None if c == 255 else chr(c)
