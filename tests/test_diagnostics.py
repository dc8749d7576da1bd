"""The self-adversarial check against hand-made generators with known behaviour."""

import numpy as np
from PIL import Image

from monet_keras.figures.self_adversarial import self_adversarial_check


class Scale:
    """A 'generator' that multiplies by a constant (no hidden signal)."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, x, training=False):
        return np.asarray(x) * self.factor


class Steganographer:
    """Hides the input at tiny amplitude in a constant image; its partner decodes it."""

    def __call__(self, x, training=False):
        return 0.5 + 0.01 * np.asarray(x)


class Decoder:
    def __call__(self, x, training=False):
        return np.clip((np.asarray(x) - 0.5) / 0.01, -1, 1)


def test_honest_identity_cycle_has_small_gap(tmp_path):
    rng = np.random.default_rng(0)
    photos = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    monets = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    result, _ = self_adversarial_check(Scale(1.0), Scale(1.0), photos, monets, noise_std=0.08,
                                       save_path=tmp_path / "fig15.png")
    assert result.photo_l1 == 0 and result.monet_l1 == 0
    # Identity cycle: the error is the noise itself, E|N(0, s)| = s * sqrt(2 / pi).
    assert abs(result.photo_l1_noisy - 0.08 * np.sqrt(2 / np.pi)) < 0.01
    with Image.open(tmp_path / "fig15.png") as image:
        assert image.size[0] > 100


def test_hidden_signal_shows_a_large_gap():
    rng = np.random.default_rng(1)
    photos = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    result, _ = self_adversarial_check(Steganographer(), Decoder(), photos, photos, noise_std=0.08)
    assert result.photo_l1 < 1e-4  # a perfect cycle...
    assert result.photo_gap > 0.5  # ...that the noise destroys


def test_figures_command_on_a_run(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from kaggle_fixtures import write_kaggle_folder

    from monet_keras.config import tiny
    from monet_keras.train.training import train

    root = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=4, size=32)
    run = str(tmp_path / "run")
    train(tiny("Os", data_dir=root, out_dir=run), verbose=0)
    here = os.path.dirname(os.path.dirname(__file__))
    done = subprocess.run([sys.executable, "-m", "monet_keras", "figures", "--run", run], capture_output=True,
                          text=True, cwd=here,
                          env=dict(os.environ, PYTHONPATH=here, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("augmentation_examples.png", "diffaugment_examples.png", "self_adversarial_check.png"):
        with Image.open(os.path.join(run, name)) as image:
            assert image.format == "PNG"
    summary = json.load(open(os.path.join(run, "self_adversarial_check.json")))
    assert summary["noise_std"] == 0.08 and summary["photo_l1"] >= 0
