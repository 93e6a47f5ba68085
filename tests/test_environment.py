"""The environment record: what a result was computed with, and how a report prints it."""

import torch

from synth.environment import describe, environment


def test_record_names_packages_cpu_and_torch_kernels():
    env = environment()
    assert env["torch"] == torch.__version__ and env["cpu"]
    assert env["torch_cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    env["torch"] = "edited"  # a copy: later records are unaffected
    assert environment()["torch"] == torch.__version__


def test_describe_separates_packages_from_the_machine():
    env = {"python": "3.11.7", "torch": "2.13.0+cpu", "cpu": "AMD EPYC", "torch_cpu_kernels": "AVX2"}
    assert describe(env) == "python 3.11.7, torch 2.13.0+cpu · AMD EPYC (torch kernels: AVX2)"
    older = {k: v for k, v in env.items() if k != "torch_cpu_kernels"}  # recorded before stop 51
    assert describe(older) == "python 3.11.7, torch 2.13.0+cpu · AMD EPYC"
    assert describe(None).startswith("not recorded")
    read_back = dict(sorted({**env, "numpy": "2.4.6", "extra": "1"}.items()))  # as a cell's JSON stores it
    assert describe(read_back) == "python 3.11.7, torch 2.13.0+cpu, numpy 2.4.6, extra 1 · AMD EPYC (torch kernels: AVX2)"
