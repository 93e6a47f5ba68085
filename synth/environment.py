"""What a result was computed with: Python, the numeric packages' versions and the CPU.

Why: synth is deterministic for a given config and seed on one machine, but float kernels differ between CPUs
and library releases, so the same benchmark cell recomputed on another machine can land a few test images
away (stop 50: the digits stack report recomputed on a fresh 2-core machine moved 14 of its 42 cells by 1-6 of
500 test images).
Results record their environment so that a report mixing cells from several machines says so.
"""

from __future__ import annotations

import platform
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: Distributions whose release can change a number synth reports (read from metadata, not imported: importing
#: diffusers only to read its version costs seconds).
PACKAGES = ("synth", "torch", "numpy", "scikit-learn", "albumentations", "opencv-python-headless", "diffusers")


def environment() -> dict[str, str]:
    """{"python": ..., <distribution>: <version> for the installed PACKAGES, "cpu": model name}: a fresh copy of
    what is read once per process, so a caller that edits it cannot change what later records say."""
    return dict(_read_environment())


@cache
def _read_environment() -> dict[str, str]:
    env = {"python": platform.python_version()}
    for dist in PACKAGES:
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            pass
    env["cpu"] = cpu_model()
    return env


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe(env: dict[str, str] | None) -> str:
    """One line for a report: "python 3.11.2, torch 2.13.0+cpu, ... · AMD EPYC"; None: not recorded."""
    if not env:
        return "not recorded (computed before environments were recorded)"
    packages = ", ".join(f"{k} {v}" for k, v in env.items() if k != "cpu")
    return f"{packages} · {env.get('cpu', 'unknown CPU')}"
