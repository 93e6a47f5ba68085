"""`synth <command> [hydra overrides]`: one entry point, one Hydra config per command.

A command `X` is the module `synth.commands.X`, exposing a pure `run(cfg)`; its primary
config is `conf/X.yaml`. Adding a command means adding those two files, nothing here.
Errors caused by input (`SynthError`) are printed as one actionable line, exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from pathlib import Path

from synth.errors import SynthError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
log = logging.getLogger("synth")


def commands() -> list[str]:
    import synth.commands as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def _usage() -> str:
    lines = ["usage: synth <command> [key=value ...] [--help] [--cfg job] [--multirun]", "", "commands:"]
    for name in commands():
        doc = (importlib.import_module(f"synth.commands.{name}").__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<10} {doc[0] if doc else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    name = argv[0]
    if name not in commands():
        print(f"synth: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    if not CONF_DIR.is_dir():
        sys.exit(f"synth: config directory {CONF_DIR} not found; install synth from a checkout with `pip install -e .`")
    module = importlib.import_module(f"synth.commands.{name}")

    def task(cfg):
        # Returning run()'s value lets sweepers (e.g. Optuna) optimise a command's metric.
        try:
            return module.run(cfg)
        except SynthError as exc:
            print(f"synth {name}: error: {exc}", file=sys.stderr)
            sys.exit(2)

    sys.argv = [f"synth {name}", *argv[1:]]
    hydra.main(config_path=str(CONF_DIR), config_name=name, version_base="1.3")(task)()


if __name__ == "__main__":
    main()
