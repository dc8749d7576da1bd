"""Training runs end to end: outputs, save/load, resume, variants, and the train_step's wiring."""

import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from kaggle_fixtures import write_kaggle_folder

from monet_keras.config import VARIANTS, tiny
from monet_keras.errors import MonetKerasError
from monet_keras.model import cyclegan, networks
from monet_keras.train import checkpoints
from monet_keras.train.run_folder import RunFolder
from monet_keras.train.training import build_gan, train

ROOT = os.path.dirname(os.path.dirname(__file__))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=4, n_photo=6, size=32)


def test_run_outputs_and_standalone_generator(folder, tmp_path):
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), epochs=2, steps_per_epoch=None,
                  batch_size=2)
    result = train(config, verbose=0)
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["variant"] == "Os"
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert set(cyclegan.LOSS_NAMES) <= set(result.history[0])
    assert sorted(os.listdir(run / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert (run / "learning_curves.png").stat().st_size > 0
    kept = checkpoints.list_checkpoints(run / "checkpoints")
    assert [os.path.basename(p) for p in kept] == ["epoch-0002.npz", "epoch-0001.npz"]
    # The generator loads with Keras alone (no monet_keras import) and matches the trained one.
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); "
              "np.save(sys.argv[3], np.asarray(m(np.load(sys.argv[2]), training=False))); "
              "assert 'monet_keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", script, str(run / "monet_generator.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, cwd=str(tmp_path),
                   env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2"))
    loaded = keras.saving.load_model(run / "monet_generator.keras")
    want = np.asarray(loaded(x, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-6)
    # ... and equals the generator restored from the last checkpoint.
    gan = build_gan(config)
    assert checkpoints.restore_latest(gan, run / "checkpoints") == 2
    np.testing.assert_allclose(np.asarray(gan.monet_generator(x, training=False)), want, atol=1e-6)


def _optimizer_state(gan):
    return [keras.ops.convert_to_numpy(v).copy()
            for v in gan.optimizer.variables]


def test_resume_continues_epoch_and_optimizer(folder, tmp_path, caplog):
    out = str(tmp_path / "run")
    first = tiny("Us", data_dir=folder, out_dir=out, epochs=1, steps_per_epoch=None, batch_size=2)
    train(first, verbose=0)
    steps = 4 // 2
    # Restoring gives exactly the optimizer state saved at the end of epoch 1.
    gan = build_gan(first)
    fresh = _optimizer_state(gan)
    assert checkpoints.restore_latest(gan, os.path.join(out, "checkpoints")) == 1
    restored = _optimizer_state(gan)
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == steps
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, restored, strict=True))

    with caplog.at_level(logging.INFO, logger="monet_keras"):
        result = train(first.replace(epochs=3), verbose=0)
    assert result.resumed_from == 1 and result.epochs_trained == 2
    assert any("resuming" in m and "epoch 1 of 3" in m for m in caplog.messages)
    assert [row["epoch"] for row in RunFolder(out).read_history()] == [1, 2, 3]
    gan = build_gan(first)
    checkpoints.restore_latest(gan, os.path.join(out, "checkpoints"))
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == 3 * steps

    # A finished run trains nothing more; a different experiment in the same folder is refused.
    assert train(first.replace(epochs=3), verbose=0).epochs_trained == 0
    for change in (dict(image_size=64), dict(variant="Os"), dict(diffaugment="color"), dict(ema_decay=0.9)):
        with pytest.raises(MonetKerasError, match=list(change)[0]):
            train(first.replace(epochs=3, **change), verbose=0)
    # ... and so is a checkpoint of another model, even when config.json says nothing.
    with pytest.raises(MonetKerasError, match="belongs to a different model"):
        checkpoints.restore_latest(build_gan(first.replace(ema_decay=0.9)), os.path.join(out, "checkpoints"))


def test_unreadable_newest_checkpoint_falls_back(folder, tmp_path, caplog):
    out = str(tmp_path / "run")
    config = tiny("Os", data_dir=folder, out_dir=out, epochs=2, steps_per_epoch=1)
    train(config, verbose=0)
    newest = os.path.join(out, "checkpoints", "epoch-0002.npz")
    with open(newest, "r+b") as f:
        f.truncate(100)
    gan = build_gan(config)
    with caplog.at_level(logging.INFO, logger="monet_keras"):
        assert checkpoints.restore_latest(gan, os.path.join(out, "checkpoints")) == 1
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name.startswith("monet_keras")]
    assert len(warnings) == 1 and "epoch-0002.npz is unreadable" in warnings[0]
    assert os.path.exists(newest + ".bad") and not os.path.exists(newest)
    # The last two are kept; a save below newer checkpoints (a restart) removes those newer ones.
    def kept():
        return [os.path.basename(p) for p in checkpoints.list_checkpoints(os.path.join(out, "checkpoints"))]
    checkpoints.save_checkpoint(gan, os.path.join(out, "checkpoints"), 2)
    assert kept() == ["epoch-0002.npz", "epoch-0001.npz"]
    checkpoints.save_checkpoint(gan, os.path.join(out, "checkpoints"), 3)
    assert kept() == ["epoch-0003.npz", "epoch-0002.npz"]
    checkpoints.save_checkpoint(gan, os.path.join(out, "checkpoints"), 2)
    assert kept() == ["epoch-0002.npz"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_two_steps_of_every_variant(folder, tmp_path, name):
    noise = 0.0 if VARIANTS[name].get("model") == "cut" else 0.08  # CUT has no cycle to add noise to
    config = tiny(name, data_dir=folder, out_dir=str(tmp_path / "run"), steps_per_epoch=2, epochs=1,
                  cycle_noise_std=noise)
    result = train(config, verbose=0)
    assert len(result.history) == 1
    assert all(np.isfinite(v) for v in result.history[0].values())
    assert os.path.exists(result.generator_path)


# --- the train step's wiring, one step with frozen weights -----------------------------------

def _one_step_logs(monkeypatch=None, shift=None, **gan_kwargs):
    """Losses of one train step with learning rate 0 (weights unchanged), dropout off, and
    instance-norm gammas 1: with the tutorial's N(0, 0.02) gammas (and epsilon 1e-3) an initial
    network's output hardly depends on its input, so a change upstream would barely show."""
    keras.utils.set_random_seed(0)
    gan = cyclegan.CycleGAN(
        networks.build_generator(32, 8, seed=1, dropout=0),
        networks.build_generator(32, 8, seed=2, dropout=0),
        networks.build_discriminator(32, 8, seed=3), networks.build_discriminator(32, 8, seed=4),
        seed=0, **gan_kwargs)
    for network in gan.networks:
        for layer in network.layers:
            if isinstance(layer, keras.layers.GroupNormalization):
                layer.gamma.assign(np.ones(layer.gamma.shape, np.float32))
    gan.compile(keras.optimizers.SGD(0.0))
    if shift is not None:
        # T() becomes a large constant shift: only discriminator inputs may see it.
        monkeypatch.setattr(cyclegan.diffaugment, "diff_augment", lambda x, policy, seed=None: x + shift)
    rng = np.random.default_rng(0)
    batch = tuple(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32) for _ in range(2))
    return {k: float(v) for k, v in gan.train_step(batch).items()}


def test_diffaugment_never_touches_cycle_and_identity_targets(monkeypatch):
    plain = _one_step_logs()
    shifted = _one_step_logs(monkeypatch, shift=50.0, diffaugment_policy="translation")
    for name in ("cycle_loss", "identity_loss"):
        assert shifted[name] == pytest.approx(plain[name], rel=1e-6), name
    for name in ("monet_disc_loss", "photo_disc_loss", "monet_gen_loss", "photo_gen_loss"):
        # (instance norm absorbs most of a constant shift; the step is deterministic, so any change shows T())
        assert abs(shifted[name] - plain[name]) > 1e-5, f"{name}: T() must wrap discriminator inputs"


def test_cycle_noise_only_changes_cycle_loss():
    plain = _one_step_logs()
    noisy = _one_step_logs(cycle_noise_std=0.5)
    # deterministic step: any change is the noise
    assert abs(noisy["cycle_loss"] - plain["cycle_loss"]) > 1e-5
    for name in ("identity_loss", "monet_disc_loss", "photo_disc_loss", "monet_gen_loss", "photo_gen_loss"):
        assert noisy[name] == pytest.approx(plain[name], rel=1e-6), name


def test_train_cli_bad_input(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "monet_keras", "train", "--out", str(tmp_path / "r"),
                               *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    missing = run("--data", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "error: data folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run("--data", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "not a Kaggle-layout data folder" in empty.stderr
    bad = run("--data", str(tmp_path / "empty"), "--set", "image_size=48")
    assert bad.returncode == 2 and "image_size" in bad.stderr
