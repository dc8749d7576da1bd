"""The train step on Keras's JAX backend against the TensorFlow step, and JAX's DataParallel.

Each run is a process of its own (tests/backend_step.py): the backend and JAX's device count are
fixed when Keras and JAX start.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from monet_keras.model import cut, cyclegan

HERE = os.path.dirname(__file__)
NETWORKS = {"cyclegan": ("monet_generator", "photo_generator", "monet_discriminator", "photo_discriminator"),
            "cut": ("monet_generator", "patch_head", "monet_discriminator")}
LOSS_NAMES = {"cyclegan": cyclegan.LOSS_NAMES, "cut": cut.LOSS_NAMES}


def _step(tmp_path, name, backend, *args, devices=1, model="cyclegan"):
    """Losses and per-network weight changes of one step of ``model`` run by backend_step.py."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = tmp_path / f"{name}.npz"
    script = os.path.join(HERE, "backend_step.py")
    done = subprocess.run([sys.executable, script, str(tmp_path / "weights.npz"), str(out),
                           "--devices", str(devices), "--model", model, *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as stored:
        losses = {k.removeprefix("loss:"): float(stored[k]) for k in stored.files if k.startswith("loss:")}
        changes = {n: np.concatenate([stored[k].ravel() for k in sorted(stored.files)
                                      if k.startswith(f"change:{n}/")]) for n in NETWORKS[model]}
    return losses, changes


def _assert_same(a, b, rtol, model="cyclegan"):
    (losses_a, changes_a), (losses_b, changes_b) = a, b
    assert losses_a.keys() == set(LOSS_NAMES[model]) == losses_b.keys()
    for name in LOSS_NAMES[model]:
        assert losses_b[name] == pytest.approx(losses_a[name], rel=rtol), name
    for network in NETWORKS[model]:
        want, got = changes_a[network], changes_b[network]
        assert np.linalg.norm(want) > 0, network  # every network is updated
        assert np.linalg.norm(got - want) <= rtol * np.linalg.norm(want), network


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_jax_step_equals_tensorflow_step(tmp_path, optimizer):
    # Same weights, same batch, dropout off, no DiffAugment, no noise. With SGD each weight's
    # change is -lr * its gradient; Adam's first step is -lr * g / (|g| + eps), and a slot kept
    # for the wrong weight would show. TensorFlow runs eagerly: in a graph, TensorFlow's
    # arithmetic rewrites re-round the generators' outputs by ~4e-5, and at this tiny size the
    # discriminators' 3x3 instance norms turn that into percent-level gradient differences (the
    # same happens between two TensorFlow graphs); eagerly, TensorFlow, TensorFlow with XLA and JAX
    # agree to a few 1e-6.
    tensorflow = _step(tmp_path, "tensorflow", "tensorflow", "--optimizer", optimizer, "--eager")
    jax = _step(tmp_path, "jax", "jax", "--optimizer", optimizer)
    _assert_same(tensorflow, jax, rtol=1e-5)


@pytest.mark.slow
def test_jax_data_parallel_over_two_devices_equals_one(tmp_path):
    # Global batch 4: 2 per device on 2 virtual CPU devices; the loss is a mean over the global
    # batch, so a loss averaged per device and then summed would be off by a factor of 2.
    one = _step(tmp_path, "one", "jax", "--batch", "4", devices=1)
    two = _step(tmp_path, "two", "jax", "--batch", "4", devices=2)
    _assert_same(one, two, rtol=1e-5)


@pytest.mark.slow
def test_cut_on_jax_equals_tensorflow_and_splits_over_two_devices(tmp_path):
    # CUT's step (PatchNCE over every position, so no random patches) on TensorFlow eagerly, on
    # JAX, and on JAX with the global batch of 4 split over 2 devices: PatchNCE's negatives come
    # from the same image, so splitting the batch changes nothing but float order.
    tensorflow = _step(tmp_path, "tensorflow", "tensorflow", "--eager", model="cut")
    one = _step(tmp_path, "one", "jax", model="cut")
    two = _step(tmp_path, "two", "jax", devices=2, model="cut")
    _assert_same(tensorflow, one, rtol=1e-5, model="cut")
    _assert_same(one, two, rtol=1e-5, model="cut")


def _train(folder, out, backend, epochs):
    """``monet-keras train`` on ``backend`` up to ``epochs`` epochs (resuming ``out``); its stdout."""
    command = [sys.executable, "-m", "monet_keras", "train", "--backend", backend, "--data", folder,
               "--out", str(out), "--variant", "Os+Aug", "--image-size", "32", "--base-filters", "4",
               "--epochs", str(epochs), "--steps-per-epoch", "2",
               "--set", "pool_size=2", "--set", "ema_decay=0.9"]
    done = subprocess.run(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def _generator_output(path, backend, images):
    """G(images) of the saved generator at ``path``, loaded on ``backend`` in a process without
    monet_keras importable (the file holds Keras's own layers only)."""
    np.save(path.parent / "images.npy", images)
    code = ("import sys, keras, numpy as np; sys.modules['monet_keras'] = None; "
            f"g = keras.saving.load_model({str(path)!r}); "
            f"np.save({str(path.parent / 'out.npy')!r}, "
            f"keras.ops.convert_to_numpy(g(np.load({str(path.parent / 'images.npy')!r}))))")
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, KERAS_BACKEND=backend,
                                                                 TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(path.parent / "out.npy")


@pytest.mark.slow
def test_a_run_moves_between_backends(tmp_path):
    # JAX trains epoch 1, TensorFlow resumes for epoch 2, JAX again for epoch 3: each resume
    # starts from the other backend's checkpoint (weights, Adam and EMA slots, step count), and
    # the saved generator computes the same image on both backends.
    from kaggle_fixtures import write_kaggle_folder

    folder = write_kaggle_folder(str(tmp_path / "data"), n_monet=4, n_photo=4, size=32)
    out = tmp_path / "run"
    assert "runs on jax, 1 cpu device(s), float32" in _train(folder, out, "jax", 1)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)

    def same_image_on_both_backends():
        on_jax = _generator_output(out / "monet_generator.keras", "jax", images)
        on_tensorflow = _generator_output(out / "monet_generator.keras", "tensorflow", images)
        assert on_jax.shape == (2, 32, 32, 3) and np.abs(on_jax).max() <= 1
        np.testing.assert_allclose(on_jax, on_tensorflow, atol=1e-5)
        return on_jax

    saved_by_jax = same_image_on_both_backends()
    log = _train(folder, out, "tensorflow", 2)
    assert "runs on tensorflow" in log and "resuming" in log and "from epoch 1 of 2 (optimizer step 2)" in log
    saved_by_tensorflow = same_image_on_both_backends()
    assert np.abs(saved_by_tensorflow - saved_by_jax).max() > 1e-4  # epoch 2 changed the generator
    log = _train(folder, out, "jax", 3)
    assert "from epoch 2 of 3 (optimizer step 4)" in log
