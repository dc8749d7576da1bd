"""The fused train step against the straightforward reference step (``fused_step=False``).

Same weights, same batch, dropout off, SGD (so each weight's change is -lr * its gradient):
both steps must give the same losses and the same updates within float tolerance.
"""

import keras
import numpy as np
import pytest

from monet_keras.accel import policy
from monet_keras.model import cyclegan, networks

SIZE, BASE, BATCH = 32, 8, 2
LR = 0.5


class ReversePool:
    """A stand-in history pool: returns the fakes in reverse batch order (so pooled != fake)."""

    def query(self, fakes):
        return fakes[::-1]


def _spread_weights(network, seed):
    """Weights of a partly trained network (kernels N(0, 1/fan_in), norm scales near 1): at the
    initialisation's N(0, 0.02) the generators output near-constant images and the step's
    gradients change by up to 10% under input perturbations of 1e-7, so two correct
    implementations with different float rounding cannot be compared there."""
    rng = np.random.default_rng(seed)
    weights = []
    for variable in network.weights:
        shape, name = tuple(variable.shape), variable.path
        if name.endswith("gamma"):
            weights.append(1 + 0.1 * rng.standard_normal(shape))
        elif len(shape) == 4:
            fan_in = np.prod(shape[:2]) * shape[-1 if "deconv" in name else 2]
            weights.append(rng.standard_normal(shape) / np.sqrt(fan_in))
        else:
            weights.append(0.1 * rng.standard_normal(shape))
    network.set_weights([w.astype(np.float32) for w in weights])


def _gan(fused, optimizer=None, small_map_matmul=True, spread=False, **kwargs):
    matmul = dict(small_map_matmul=small_map_matmul)
    gan = cyclegan.CycleGAN(
        networks.build_generator(SIZE, BASE, seed=1, dropout=0, **matmul),
        networks.build_generator(SIZE, BASE, seed=2, dropout=0, **matmul),
        networks.build_discriminator(SIZE, BASE, seed=3, **matmul),
        networks.build_discriminator(SIZE, BASE, seed=4, **matmul),
        seed=0, fused_step=fused, **kwargs)
    if spread:
        for seed, network in enumerate(gan.networks):
            _spread_weights(network, seed)
    gan.compile((optimizer or (lambda: keras.optimizers.SGD(LR)))())
    return gan


def _batch(batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32) for _ in range(2))


def _step(fused, batch=None, optimizer=None, small_map_matmul=True, spread=False, **kwargs):
    """(logs, per-network lists of gradients recovered from the SGD update) of one step."""
    gan = _gan(fused, optimizer, small_map_matmul, spread, **kwargs)
    before = [[np.array(v) for v in net.trainable_variables] for net in gan.networks]
    logs = {k: float(v) for k, v in gan.train_step(batch or _batch()).items()}
    grads = [[(b - np.array(v)) / LR for b, v in zip(net_before, net.trainable_variables)]
             for net_before, net in zip(before, gan.networks)]
    return logs, grads


def _assert_same_step(a, b):
    logs_a, grads_a = a
    logs_b, grads_b = b
    assert logs_a.keys() == set(cyclegan.LOSS_NAMES) == logs_b.keys()
    for name in cyclegan.LOSS_NAMES:
        assert logs_a[name] == pytest.approx(logs_b[name], rel=1e-5, abs=1e-7), name
    for network_a, network_b in zip(grads_a, grads_b, strict=True):
        scale = max(float(np.abs(g).max()) for g in network_a)
        assert scale > 0  # every network is updated
        for g_a, g_b in zip(network_a, network_b, strict=True):
            np.testing.assert_allclose(g_a, g_b, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("kwargs", [
    {},
    {"adversarial_loss": "lsgan", "lambda_cycle": 3.0, "lambda_identity": 0.5},
    {"cycle_noise_std": 0.3},  # same seed, same call order: the same noise
    {"image_pool_monet": ReversePool(), "image_pool_photo": ReversePool()},
], ids=["plain", "lsgan", "cycle_noise", "image_pool"])
def test_fused_step_equals_reference(kwargs):
    _assert_same_step(_step(False, **kwargs), _step(True, **kwargs))


@pytest.mark.parametrize("fused", [False, True])
def test_kit_step_equals_the_tutorials(fused):
    # The tutorial's step: Keras's own conv layers and the straightforward step. The kit's: the
    # small-map matmul layers (monet_keras.accel.smallconv) with either step. Same losses and updates,
    # compared at well-conditioned weights (see _spread_weights).
    tutorial = _step(False, small_map_matmul=False, spread=True)
    _assert_same_step(tutorial, _step(fused, small_map_matmul=True, spread=True))


def test_fused_step_equals_reference_batch_one_and_three():
    for batch in (1, 3):
        _assert_same_step(_step(False, batch=_batch(batch, seed=batch)),
                          _step(True, batch=_batch(batch, seed=batch)))


def test_fused_step_with_loss_scaling_equals_reference():
    # LossScaleOptimizer (scale 2**15): both steps scale each pair's loss, and apply_gradients
    # unscales, so the update equals plain SGD's.
    def optimizer():
        return keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(LR))
    scaled = _step(True, optimizer=optimizer)
    _assert_same_step(_step(False, optimizer=optimizer), scaled)
    _assert_same_step(_step(False), scaled)


def test_fused_step_puts_every_discriminator_input_through_t(monkeypatch):
    # A deterministic stand-in for T() (a per-pixel square, which instance norm cannot absorb as
    # it would an affine map): with it both steps must agree exactly, so the fused step applies
    # T() to every real and fake discriminator input, and (cycle and identity losses unchanged vs
    # no T) to nothing else.
    calls = []

    def t(x, policy, seed=None):
        calls.append(int(x.shape[0]))
        return keras.ops.square(x) - 0.5

    monkeypatch.setattr(cyclegan.diffaugment, "diff_augment", t)
    # Spread weights: initial ones (gammas ~ N(0, 0.02)) leave the losses nearly blind to T().
    reference = _step(False, spread=True, diffaugment_policy="translation")
    reference_calls, calls[:] = list(calls), []
    fused = _step(True, spread=True, diffaugment_policy="translation")
    _assert_same_step(reference, fused)
    assert reference_calls == [BATCH] * 4 and calls == [2 * BATCH] * 2
    plain = _step(True, spread=True)[0]
    for name in ("cycle_loss", "identity_loss"):
        assert fused[0][name] == pytest.approx(plain[name], rel=1e-6), name
    for name in ("monet_disc_loss", "photo_disc_loss", "monet_gen_loss", "photo_gen_loss"):
        assert abs(fused[0][name] - plain[name]) > 1e-5, name


def test_fused_step_with_real_diffaugment_keeps_cycle_and_identity():
    plain = _step(True)[0]
    augmented, grads = _step(True, diffaugment_policy="color,translation,cutout")
    assert all(np.isfinite(v) for v in augmented.values())
    assert all(np.all(np.isfinite(g)) for network in grads for g in network)
    for name in ("cycle_loss", "identity_loss"):
        assert augmented[name] == pytest.approx(plain[name], rel=1e-6), name


def test_speed_policy_per_device():
    # Measured (benchmarks/README.md): on CPU the fused step is no faster at 256 px, the matmul
    # convolutions, fused Adam and malloc settings are; the GPU and TPU choices are unmeasured.
    # The TensorFlow kernels (matmul convolutions, fused Adam) are TensorFlow's only.
    expected = {  # backend, device, replicas: small_map_matmul, fused_step, fused_adam, tune_malloc
        ("tensorflow", "cpu", 1): (True, False, True, True),
        ("tensorflow", "gpu", 1): (False, True, True, False),
        ("tensorflow", "gpu", 2): (False, True, False, False),
        ("tensorflow", "tpu", 8): (False, True, False, False),
        ("jax", "cpu", 1): (False, False, False, True),
        ("jax", "cpu", 2): (False, False, False, True),
        ("jax", "gpu", 1): (False, True, False, False),
        ("jax", "tpu", 8): (False, True, False, False),
    }
    for (backend, device, replicas), switches in expected.items():
        speed = policy.policy_for(device, replicas, backend=backend)
        assert (speed.small_map_matmul, speed.fused_step, speed.fused_adam, speed.tune_malloc) == switches
        assert speed.precision == ("mixed_bfloat16" if device == "tpu" else "float32")
    # this test machine
    assert policy.resolve() == policy.policy_for("cpu", 1, backend=keras.backend.backend())
