"""The benchmark harness: labelled images needed to reach a target accuracy, with vs without synthetic data.

protocol.py (what each arm may see, enforced) -> arms.py (arm registry) -> runner.py
(resumable grid of cells) -> curves.py (data-to-target, bootstrap CIs) -> report.py.
"""

from synth.bench.arms import ArmConfig, ArmOutput, register_arm, registered
from synth.bench.protocol import POOL, PROTOCOLS, STRICT, ArmData, ProtocolViolation

__all__ = ["POOL", "PROTOCOLS", "STRICT", "ArmConfig", "ArmData", "ArmOutput", "ProtocolViolation",
           "register_arm", "registered"]
