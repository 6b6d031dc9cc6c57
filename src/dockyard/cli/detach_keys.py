"""Docker's detach keys: parse `--detach-keys` and recognise the sequence in typed input.

`--detach-keys` is Docker's format: comma-separated keys, each one character ("q") or
``ctrl-<c>`` with c one of a-z, @, [, \\, ], ^, _ (Ctrl-A is byte 1 ... Ctrl-_ byte 31);
the default is ``ctrl-p,ctrl-q``; an empty value turns detaching off.

Invariants of `DetachRecognizer`:
- the sequence is found however the input is split into reads (a held prefix waits for the
  next read);
- every byte that is not part of a completed sequence is passed on, in order, exactly once
  (a Ctrl-P followed by anything but Ctrl-Q goes through as both bytes);
- after the sequence nothing more is passed on: the rest of that read is dropped, as Docker
  drops it.
"""

from __future__ import annotations

from typing import NoReturn

from dockyard.cli.kubeargs import CliError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DETACHED_MESSAGE = "read escape sequence"
_CTRL_SYMBOLS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """Return the bytes a `--detach-keys` value stands for (b"" turns detaching off)."""
    if text == "":
        return b""
    return bytes(_key_byte(key, text) for key in text.split(","))


def _key_byte(key: str, text: str) -> int:
    if len(key) == 1:
        return ord(key) if ord(key) < 128 else _bad(key, text)
    name = key.lower()
    if name.startswith("ctrl-") and len(name) == 6:
        char = name[5]
        if "a" <= char <= "z":
            return ord(char) - ord("a") + 1
        if char in _CTRL_SYMBOLS:
            return _CTRL_SYMBOLS[char]
    return _bad(key, text)


def _bad(key: str, text: str) -> NoReturn:
    raise CliError(f"invalid --detach-keys {text!r}: {key!r} is not a key: give comma-separated "
                   "single characters or ctrl-<a-z, @, [, \\, ], ^ or _>, e.g. "
                   f"{DEFAULT_DETACH_KEYS!r} (\"\" turns detaching off)")


class DetachRecognizer:
    """Watch typed bytes for the detach sequence, passing the other bytes through."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""  # a prefix of keys typed so far, not yet passed on
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        """Return the bytes of `data` to pass on; set `detached` once the sequence is typed."""
        if not self.keys or self.detached:
            return b"" if self.detached else data
        out = bytearray()
        for byte in data:
            self.held += bytes([byte])
            # Drop bytes from the front until what is held could still become the sequence.
            while self.held and not self.keys.startswith(self.held):
                out.append(self.held[0])
                self.held = self.held[1:]
            if self.held == self.keys:
                self.detached, self.held = True, b""
                break
        return bytes(out)

    def flush(self) -> bytes:
        """Return the held prefix (input ended before the sequence was complete)."""
        held, self.held = self.held, b""
        return held
