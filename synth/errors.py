"""Exceptions a user can act on.

Every error synth raises for bad input derives from `SynthError`; the CLI prints its
message (no traceback) and exits non-zero. Messages name the offending file or config key
and say what to do about it.
"""


class SynthError(Exception):
    """Base class for errors caused by input or configuration, not by a bug in synth."""


class ConfigError(SynthError, ValueError):
    """A configuration value is missing, out of range or inconsistent."""


class DataError(SynthError):
    """Real or synthetic data on disk cannot be used as it is."""


class CheckpointError(SynthError):
    """A checkpoint directory is missing, incomplete or from another generator."""
