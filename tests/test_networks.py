"""The report's generator and discriminator: shapes, the tutorial's parameter counts, sizes."""

import keras
import numpy as np
import pytest

from monet_keras.config import tiny
from monet_keras.errors import MonetKerasError
from monet_keras.model import networks
from monet_keras.train import training


def test_tutorial_parameter_counts_at_256():
    generator = networks.build_generator(256, 64)
    discriminator = networks.build_discriminator(256, 64)
    assert generator.count_params() == 54_414_979
    assert discriminator.count_params() == 2_765_569
    assert discriminator.output_shape == (None, 30, 30, 1)
    assert generator.output_shape == (None, 256, 256, 3)
    # 8 encoder levels, 256 -> 1 px; filters 64, 128, 256, 512 x5
    assert networks.generator_filters(256) == [64, 128, 256, 512, 512, 512, 512, 512]
    assert generator.get_layer("down8_conv").output.shape[1:3] == (1, 1)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_working_sizes(size):
    generator = networks.build_generator(size, 8, seed=0)
    discriminator = networks.build_discriminator(size, 8, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    y = np.asarray(generator(x, training=False))
    assert y.shape == x.shape
    assert np.all(np.abs(y) <= 1.0)
    logits = np.asarray(discriminator(x, training=False))
    assert logits.shape == (2, size // 8 - 2, size // 8 - 2, 1)
    assert len(networks.generator_filters(size, 8)) == int(np.log2(size))


def test_instance_norm_is_per_image():
    # A batch of two gives the same output for each image as batches of one (eval mode).
    generator = networks.build_generator(32, 8, seed=1)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    both = np.asarray(generator(x, training=False))
    first = np.asarray(generator(x[:1], training=False))
    np.testing.assert_allclose(both[:1], first, atol=1e-5)


@pytest.mark.parametrize("build, layer", [(networks.build_generator, "down2_norm"),
                                          (networks.build_generator, "up1_norm"),
                                          (networks.build_discriminator, "down2_norm")])
def test_instance_norm_is_the_tutorials(build, layer):
    # The tutorial's tensorflow-addons InstanceNormalization: per image and channel,
    # gamma * (x - mean) / sqrt(var + 1e-3) + beta. Small maps, as at initialisation (variance
    # ~1e-4), where the epsilon sets the output's scale: 1e-5 would give outputs ~3x larger.
    norm = build(32, 8, seed=0).get_layer(layer)
    rng = np.random.default_rng(1)
    channels = norm.gamma.shape[0]
    gamma, beta = rng.normal(1, 0.5, channels), rng.normal(0, 0.5, channels)
    norm.gamma.assign(gamma.astype(np.float32))
    norm.beta.assign(beta.astype(np.float32))
    x = (0.01 * rng.standard_normal((2, 4, 4, channels))).astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(1, 2), keepdims=True), x64.var(axis=(1, 2), keepdims=True)
    want = gamma * (x64 - mean) / np.sqrt(var + 1e-3) + beta
    np.testing.assert_allclose(np.asarray(norm(x)), want, rtol=1e-4, atol=1e-5)


def test_seed_makes_weights_reproducible():
    a = networks.build_generator(32, 8, seed=3).get_weights()
    b = networks.build_generator(32, 8, seed=3).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("size", [16, 48, 100])
def test_bad_size(size):
    with pytest.raises(MonetKerasError, match="image_size"):
        networks.build_generator(size, 8)


def _random_weights(model):
    """The randomly initialised weights: kernels and instance-norm gammas (biases and betas start at 0)."""
    return {f"{model.name}/{w.path}": np.asarray(w).ravel() for w in model.weights
            if w.path.endswith(("kernel", "gamma"))}


def test_initial_weights_share_no_random_stream():
    # The failure mode: one integer seed reused gives identical draws (same shape) or identical
    # prefixes (other shapes), as this control shows.
    a = keras.initializers.RandomNormal(0, 0.02, seed=7)((4, 4, 3, 8))
    b = keras.initializers.RandomNormal(0, 0.02, seed=7)((4, 4, 8, 16))
    assert np.array_equal(np.asarray(a).ravel()[:8], np.asarray(b).ravel()[:8])

    nets = training.build_networks(tiny(image_size=32, base_filters=8, seed=3))
    weights = {}
    for model in nets.values():
        weights.update(_random_weights(model))
    # U-Net at 32 px: 5 down + 4 up + 1 output kernels, 8 norms; PatchGAN: 5 kernels, 3 norms
    assert len(weights) == 2 * (10 + 8) + 2 * (5 + 3)
    prefixes = {}
    for name, values in weights.items():
        prefixes.setdefault(tuple(values[:8]), []).append(name)
    assert [names for names in prefixes.values() if len(names) > 1] == []
    # and the same seed builds the same networks
    again = training.build_networks(tiny(image_size=32, base_filters=8, seed=3))
    for model in again.values():
        for key, values in _random_weights(model).items():
            np.testing.assert_array_equal(values, weights[key])
