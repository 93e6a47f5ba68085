"""What a result was computed with: Python, the numeric packages' versions, the CPU and torch's CPU kernels.

Why: synth is deterministic for a given config and seed on one machine, but float kernels differ between CPUs,
so the same benchmark cell recomputed on another machine can land a few test images away (stop 50: the digits
stack report recomputed on a fresh 2-core machine moved 14 of its 42 cells by 1-6 of 500 test images). Stop 51
swapped numpy, scikit-learn, SciPy and OpenCV for older releases on one machine, and 8 cells (two of them among
those that had moved) came out identical: the release of those packages did not move them; torch, pinned,
picks its kernels by the CPU's instruction set. So a record names that set (`torch_cpu_kernels`: "AVX2",
"AVX512", ...) besides the CPU's model name, which virtual machines often report only as a family.
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
#: The keys that describe the machine rather than a package release.
MACHINE = ("cpu", "torch_cpu_kernels")


def environment() -> dict[str, str]:
    """{"python": ..., <distribution>: <version> for the installed PACKAGES, "cpu": model name,
    "torch_cpu_kernels": instruction set}: a fresh copy of what is read once per process, so a caller that edits it
    cannot change what later records say."""
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
    env["torch_cpu_kernels"] = torch_cpu_kernels()
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


def torch_cpu_kernels() -> str:
    """The instruction set torch's CPU kernels dispatch to ("DEFAULT", "AVX2", "AVX512", "SVE256", ...), or
    "unknown" where this torch cannot say."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def describe(env: dict[str, str] | None) -> str:
    """One line for a report: "python 3.11.2, torch 2.13.0+cpu, ... · AMD EPYC (torch kernels: AVX2)"; None:
    not recorded. Records from before stop 51 name no kernels and read without the brackets."""
    if not env:
        return "not recorded (computed before environments were recorded)"
    order = {k: i for i, k in enumerate(("python", *PACKAGES))}  # a JSON round trip sorts the keys; undo that
    keys = sorted((k for k in env if k not in MACHINE), key=lambda k: (order.get(k, len(order)), k))
    packages = ", ".join(f"{k} {env[k]}" for k in keys)
    kernels = f" (torch kernels: {env['torch_cpu_kernels']})" if "torch_cpu_kernels" in env else ""
    return f"{packages} · {env.get('cpu', 'unknown CPU')}{kernels}"
