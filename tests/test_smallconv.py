"""Small-map convolutions as matmuls: the same convolutions as TF's and as direct numpy sums."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_keras.accel import smallconv
from monet_keras.model import networks


def numpy_conv(x, kernel):
    """Direct sum of a 4x4 stride-2 'same' convolution (TF's padding: the extra pixel after)."""
    batch, height, width, _ = x.shape
    out_h, out_w = -(-height // 2), -(-width // 2)
    top = max(2 * (out_h - 1) + 4 - height, 0) // 2
    left = max(2 * (out_w - 1) + 4 - width, 0) // 2
    out = np.zeros((batch, out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            for ky in range(4):
                for kx in range(4):
                    y, x_ = 2 * i + ky - top, 2 * j + kx - left
                    if 0 <= y < height and 0 <= x_ < width:
                        out[:, i, j] += x[:, y, x_] @ kernel[ky, kx]
    return out


def numpy_conv_transpose(x, kernel):
    """Scatter form of a 4x4 stride-2 'same' transposed convolution: input pixel i adds
    x[i] * kernel[tap] to output 2i - 1 + tap (kernel is (4, 4, c_out, c_in))."""
    batch, height, width, _ = x.shape
    out = np.zeros((batch, 2 * height, 2 * width, kernel.shape[2]))
    for i in range(height):
        for j in range(width):
            for ky in range(4):
                for kx in range(4):
                    y, x_ = 2 * i - 1 + ky, 2 * j - 1 + kx
                    if 0 <= y < 2 * height and 0 <= x_ < 2 * width:
                        out[:, y, x_] += x[:, i, j] @ kernel[ky, kx].T
    return out


SHAPES = [(1, 1, 1, 3, 5), (2, 2, 2, 4, 3), (3, 4, 4, 2, 6), (2, 3, 5, 3, 2), (1, 7, 2, 5, 4)]


def _tf_conv_transpose(x, kernel):
    batch, height, width, _ = x.shape
    output_shape = (batch, 2 * height, 2 * width, kernel.shape[2])
    return tf.nn.conv2d_transpose(x, kernel, output_shape, 2, "SAME").numpy()


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_direct_sums_and_tf(shape, transposed):
    batch, height, width, c_in, c_out = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((batch, height, width, c_in)).astype(np.float32)
    kernel_shape = (4, 4, c_out, c_in) if transposed else (4, 4, c_in, c_out)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    if transposed:
        ours, direct, tf_op = smallconv.conv_transpose_4x4_s2, numpy_conv_transpose, _tf_conv_transpose
    else:
        ours, direct, tf_op = (smallconv.conv_4x4_s2, numpy_conv,
                               lambda x, k: tf.nn.conv2d(x, k, 2, "SAME").numpy())
    got = ours(tf.constant(x), tf.constant(kernel)).numpy()
    np.testing.assert_allclose(got, direct(x.astype(np.float64), kernel.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, tf_op(x, kernel), rtol=1e-5, atol=1e-5)


def _output_and_gradients(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.cos(y))  # a non-linear loss so every output matters differently
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_variables)]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("size", [2, 4, 8, 16, 32])
def test_layers_match_keras_layers_with_gradients(transposed, size):
    # 2-16 px take the matmul path, 32 px Keras's own (transposed: up to 4x4 inputs); either way
    # the layer is Keras's, with the same weights, bias and activation.
    kind = ((smallconv.Conv2DTranspose, keras.layers.Conv2DTranspose) if transposed
            else (smallconv.Conv2D, keras.layers.Conv2D))
    ours, stock = (cls(5, 4, strides=2, padding="same", activation="tanh", use_bias=True,
                       bias_initializer="random_normal") for cls in kind)
    x = np.random.default_rng(size).standard_normal((2, size, size, 3)).astype(np.float32)
    stock(x)
    ours(x)
    ours.set_weights(stock.get_weights())
    for got, expected in zip(_output_and_gradients(ours, x), _output_and_gradients(stock, x), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_layers_take_the_matmul_path_only_on_small_maps(monkeypatch):
    calls = []
    for name in ("conv_4x4_s2", "conv_transpose_4x4_s2"):
        original = getattr(smallconv, name)
        monkeypatch.setattr(smallconv, name, lambda x, k, name=name, original=original: (calls.append(
            (name, tuple(x.shape[1:3]))), original(x, k))[1])
    for size in (1, 2, 4, 8, 16, 32):
        x = np.zeros((1, size, size, 2), np.float32)
        smallconv.Conv2D(3, 4, strides=2, padding="same")(x)
        smallconv.Conv2DTranspose(3, 4, strides=2, padding="same")(x)
    smallconv.Conv2D(3, 3, strides=2, padding="same")(np.zeros((1, 2, 2, 2), np.float32))  # 3x3: Keras's
    smallconv.Conv2D(3, 4, strides=1, padding="same")(np.zeros((1, 2, 2, 2), np.float32))  # stride 1: Keras's
    assert calls == [("conv_4x4_s2", (1, 1)), ("conv_transpose_4x4_s2", (1, 1)),
                     ("conv_4x4_s2", (2, 2)), ("conv_transpose_4x4_s2", (2, 2)),
                     ("conv_4x4_s2", (4, 4)), ("conv_transpose_4x4_s2", (4, 4)),
                     ("conv_4x4_s2", (8, 8)), ("conv_4x4_s2", (16, 16))]


def _generator_pass(generator, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        y = generator(x, training=True)
        loss = tf.reduce_mean(tf.square(y - 0.3))
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, generator.trainable_variables)]


def test_generator_with_matmul_layers_equals_the_keras_one():
    ours = networks.build_generator(32, 8, seed=3, dropout=0, small_map_matmul=True)
    stock = networks.build_generator(32, 8, seed=3, dropout=0)
    assert {type(layer) for layer in ours.layers} >= {smallconv.Conv2D, smallconv.Conv2DTranspose}
    assert not {type(layer) for layer in stock.layers} & {smallconv.Conv2D, smallconv.Conv2DTranspose}
    for a, b in zip(ours.get_weights(), stock.get_weights(), strict=True):  # same seed: same initial weights
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    results = list(zip(_generator_pass(ours, x), _generator_pass(stock, x), strict=True))
    np.testing.assert_allclose(results[0][0], results[0][1], rtol=1e-4, atol=1e-5)
    for got, expected in results[1:]:
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * max(scale, 1e-12))


def test_matmul_layers_under_mixed_bfloat16():
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 8)).astype(np.float32)
    layers = []
    for cls in (smallconv.Conv2DTranspose, keras.layers.Conv2DTranspose):
        layers.append(cls(4, 4, strides=2, padding="same", dtype="mixed_bfloat16"))
        layers[-1](x)
    layers[0].set_weights(layers[1].get_weights())
    ours, stock = (layer(x) for layer in layers)
    assert ours.dtype == stock.dtype == "bfloat16"
    np.testing.assert_allclose(np.asarray(ours, np.float32), np.asarray(stock, np.float32),
                               rtol=0.05, atol=0.05)


def test_matmul_layers_save_and_load(tmp_path):
    generator = networks.build_generator(32, 4, seed=5, small_map_matmul=True)
    path = str(tmp_path / "g.keras")
    keras.saving.save_model(generator, path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded.get_layer("up1_deconv"), smallconv.Conv2DTranspose)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), generator(x).numpy(), rtol=1e-6, atol=1e-6)
