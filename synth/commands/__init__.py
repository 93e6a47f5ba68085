"""One module per CLI command, each with a pure `run(cfg)` and a config `conf/<name>.yaml`."""
