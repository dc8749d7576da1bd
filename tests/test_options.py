"""CycleGAN options off in the report: image pool (in a run; the pool itself: test_image_pool.py),
linear LR decay, EMA generator."""

import os

import keras
import numpy as np
import pytest
from kaggle_fixtures import write_kaggle_folder

from monet_keras.config import tiny
from monet_keras.train import callbacks as cb
from monet_keras.train import checkpoints
from monet_keras.train.training import build_gan, train


def test_linear_decay_factors():
    # epochs=10, decay over the last 4: constant for epochs 0-5, then 4/5, 3/5, 2/5, 1/5.
    got = [cb.decay_factor(e, 10, 4) for e in range(10)]
    np.testing.assert_allclose(got, [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert [cb.decay_factor(e, 3, 0) for e in range(3)] == [1, 1, 1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=4, n_photo=4, size=32)


def test_schedule_and_pool_in_a_run(folder, tmp_path):
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), epochs=3, lr_decay_epochs=2,
                  steps_per_epoch=2, pool_size=3)
    history = train(config, verbose=0).history
    rates = [row["learning_rate"] for row in history]
    np.testing.assert_allclose(rates, [2e-4, 2e-4 * 2 / 3, 2e-4 / 3], rtol=1e-5)


def _generator_averages(gan):
    """The optimizer's moving averages of G_monet's trainable weights, by Keras's own variable index."""
    optimizer = gan.optimizer
    return [optimizer._model_variables_moving_average[optimizer._get_variable_index(v)]
            for v in gan.monet_generator.trainable_variables]


def test_ema_generator_lags_live_weights(folder, tmp_path):
    decay = 0.6
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), ema_decay=decay)
    gan = build_gan(config)
    rng = np.random.default_rng(0)
    batch = tuple(rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32) for _ in range(2))
    live = []
    for _ in range(4):
        gan.train_step(batch)
        live.append([keras.ops.convert_to_numpy(v).copy() for v in gan.monet_generator.trainable_variables])
    # Independent recomputation: average = weights after step 1, then d * average + (1 - d) * weights.
    expected = live[0]
    for weights in live[1:]:
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, weights)]
    averages = _generator_averages(gan)
    for got, want in zip(averages, expected, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(keras.ops.convert_to_numpy(a), w) for a, w in zip(averages, live[-1]))


def test_ema_weights_are_what_gets_saved(folder, tmp_path):
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), ema_decay=0.9, steps_per_epoch=3)
    train(config, verbose=0)
    saved = keras.saving.load_model(os.path.join(config.out_dir, "monet_generator.keras"))
    gan = build_gan(config)
    checkpoints.restore_latest(gan, os.path.join(config.out_dir, "checkpoints"))
    averages = _generator_averages(gan)
    for variable, average in zip(saved.trainable_variables, averages, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), keras.ops.convert_to_numpy(average))
    assert any(not np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(w))
               for a, w in zip(saved.trainable_variables, gan.monet_generator.trainable_variables,
                               strict=True))
