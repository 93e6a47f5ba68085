"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def tmp_name(path: Path) -> Path:
    """A temporary sibling unique to this process, so concurrent writers never share one."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it over `path`.

    For writers that take a file name (pyarrow, safetensors); `tmp` ends in `.tmp`, which
    is how the dataset writer recognises leftovers of a killed run.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    write(tmp)
    tmp.replace(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary sibling, then rename it over `path`."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
