"""The snippet in docs/mixing.md runs as written, with a user-defined model."""

from __future__ import annotations

import re

import numpy as np

from tests.conftest import REPO, write_image_folder


def _snippet() -> str:
    text = (REPO / "docs" / "mixing.md").read_text()
    section = text.split("## Paste into your own loop", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_docs_snippet_runs_verbatim(tmp_path, monkeypatch, digits_splits):
    code = _snippet()
    assert "for x, y, is_synthetic in loader" in code
    assert len(code.split("model =")[0].strip().splitlines()) <= 12  # the synth part stays ~10 lines
    # Stand-in for `synth generate` output: an ImageFolder of the labelled digits (the reader accepts both).
    ls = digits_splits.labelled
    write_image_folder(tmp_path / "outputs/generate/digits-light-seed0", ls.images[:40], ls.labels[:40], ls.class_names)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/mixing.md", "exec"), scope)
    assert scope["sampler"].epoch == 3  # three epochs ran
    assert np.isfinite(scope["loss"].item())
