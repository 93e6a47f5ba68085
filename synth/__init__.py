"""synth: synthetic data for label-efficient image classification.

The data flow reads top to bottom, one module per stage:
real data (`synth.data`) -> fit/sample (`generators`) -> write (`synth.writer`)
-> score/filter -> mix -> train -> report.
"""

from synth.errors import ConfigError, DataError, SynthError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "SynthError", "__version__"]
