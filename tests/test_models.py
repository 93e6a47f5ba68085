"""SmallCNN: size-aware pooling and loading checkpoints written before the `pool` key existed."""

from __future__ import annotations

import json

import torch

from synth.models import SmallCNN
from synth.ssl import load_encoder, save_encoder


def _convs_at(model: SmallCNN, size: int) -> list[int]:
    """Spatial size each conv layer sees for a size x size input."""
    seen: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, x, _y: seen.append(x[0].shape[-1]))
             for m in model.body if isinstance(m, torch.nn.Conv2d)]
    model.eval()
    model(torch.zeros(2, 1, size, size))
    for h in hooks:
        h.remove()
    return seen


def test_pooling_is_on_from_16_px_and_off_for_tiny_images():
    assert _convs_at(SmallCNN(1, 10, (28, 28), width=4, hidden=8), 28) == [28, 14]
    assert _convs_at(SmallCNN(1, 10, (8, 8), width=4, hidden=8), 8) == [8, 8]
    assert _convs_at(SmallCNN(1, 10, (28, 28), width=4, hidden=8, pool=False), 28) == [28, 28]
    assert SmallCNN(1, 10, (28, 28), width=4, hidden=8).config["pool"] is True


def test_an_encoder_saved_without_the_pool_key_loads_as_unpooled(tmp_path):
    old = SmallCNN(1, 10, (28, 28), width=4, hidden=8, pool=False)
    save_encoder(old, tmp_path)
    cfg = tmp_path / "encoder_config.json"
    meta = json.loads(cfg.read_text())
    del meta["model"]["pool"]  # what a checkpoint from before the key looks like
    cfg.write_text(json.dumps(meta))
    loaded = load_encoder(tmp_path)
    x = torch.rand(3, 1, 28, 28)
    old.eval()
    loaded.eval()
    assert torch.equal(old(x), loaded(x))


def test_to_tensor_takes_read_only_arrays_without_a_warning_and_leaves_them_alone():
    """Fashion-MNIST's images come from np.frombuffer (read-only); torch warns on those (once per process,
    so this checks in a subprocess where nothing warned before)."""
    import subprocess
    import sys

    code = ("import warnings, numpy as np; warnings.simplefilter('error'); from synth.training import to_tensor; "
            "a = np.frombuffer(bytes(range(32)), dtype=np.uint8).reshape(2, 4, 4, 1); t = to_tensor(a); "
            "assert t.shape == (2, 1, 4, 4) and abs(float(t.max()) - 31 / 255) < 1e-6 and not a.flags.writeable")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_top1_scores_combined_probabilities_as_accuracy_scores_one_model():
    """`top1` is `accuracy` for probabilities combined outside a model (an ensemble's mean): the same number for
    one model's own probabilities, and the argmax of a mean can differ from every member's."""
    import numpy as np

    from synth.data import ImageSet
    from synth.training import TrainConfig, accuracy, predict_proba, top1, train_classifier

    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8), np.arange(12) % 3,
                    np.array([f"x{i}" for i in range(12)]), ("a", "b", "c"))
    model = train_classifier(data, TrainConfig(steps=3, width=4, hidden=8), seed=0)
    assert top1(predict_proba(model, data.images), data.labels) == accuracy(model, data)
    a = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]])
    b = np.array([[0.0, 0.45, 0.55], [0.0, 0.45, 0.55]])
    labels = np.array([1, 1])
    assert top1(a, labels) == top1(b, labels) == 0.0 and top1((a + b) / 2, labels) == 1.0
