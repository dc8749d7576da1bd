"""Training-only augmentation, checked against independent numpy computations, scipy's and Keras's
resampling and tf.image.resize, on the TensorFlow and the JAX backend."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf  # only as an independent reference (tf.image.resize), on both backends
from keras import ops
from PIL import Image
from scipy import ndimage
from stateless_jit import jax_only, jit_stateless, tensorflow_only, values_of

from monet_keras.config import ExperimentConfig
from monet_keras.errors import MonetKerasError
from monet_keras.figures import augmentation
from monet_keras.model import augment
from monet_keras.model.augment import TrainingAugmentation, build_augmenter

SIZE = 32


def images(batch, size=SIZE, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


def numpy(x):
    return ops.convert_to_numpy(x)


def np_resize_bilinear(image, size):
    """tf.image.resize's bilinear rule in numpy: half-pixel centres, edge clamping."""
    n = image.shape[0]
    src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, None)
    lo = np.minimum(np.floor(src).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None]
    rows = image[lo] * (1 - w[:, :, None]) + image[hi] * w[:, :, None]
    return rows[:, lo] * (1 - w.T[:, :, None]) + rows[:, hi] * w.T[:, :, None]


# --- inference: the identity -----------------------------------------------------------------

def test_identity_when_not_training():
    layer = build_augmenter(SIZE, seed=1)
    x = ops.convert_to_tensor(images(3))
    assert layer(x, training=False) is x
    assert layer(x) is x


@tensorflow_only
def test_identity_when_not_training_in_a_graph():
    layer = build_augmenter(SIZE, seed=1)
    x = tf.constant(images(3))
    graph = tf.function(lambda x: layer(x, training=False))
    assert graph(x).numpy().tobytes() == x.numpy().tobytes()


def test_identity_under_a_mixed_precision_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = build_augmenter(SIZE, seed=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = ops.convert_to_tensor(images(2))
    assert layer(x, training=False) is x
    assert keras.backend.standardize_dtype(layer(x, training=True).dtype) == "float32"


# --- training: each transform --------------------------------------------------------------

def test_training_changes_every_image_and_keeps_shape_dtype_range():
    layer = build_augmenter(SIZE, seed=2)
    x = np.sign(images(4)).astype(np.float32)  # only -1 and 1: the extremes of the range
    y = numpy(layer(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    assert np.all(np.abs(y - x).reshape(4, -1).mean(axis=1) > 0.05)


def test_flip_mirrors_some_images_and_leaves_the_others():
    layer = build_augmenter(SIZE, flip=True, crop_fraction=1.0, rotation=0.0, seed=3)
    x = images(16)
    y = numpy(layer(x, training=True))
    flipped = [np.array_equal(out, src[:, ::-1]) for src, out in zip(x, y)]
    kept = [np.array_equal(out, src) for src, out in zip(x, y)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image is exactly one of the two
    assert any(flipped) and any(kept)


def test_crop_is_a_random_window_resized_back():
    crop = round(0.75 * SIZE)
    layer = build_augmenter(SIZE, flip=False, crop_fraction=0.75, rotation=0.0, seed=4)
    x = images(8)
    y = numpy(layer(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    corners = []
    for src, out in zip(x, y):
        matches = [
            (top, left)
            for top in range(SIZE - crop + 1)
            for left in range(SIZE - crop + 1)
            if np.allclose(np_resize_bilinear(src[top: top + crop, left: left + crop], SIZE), out, atol=1e-5)
        ]
        assert len(matches) == 1
        corners.append(matches[0])
    assert len(set(corners)) > 1  # drawn per sample


def test_rotate_matches_keras_affine_transform_with_reflect_fill():
    x = images(3)
    angles = np.array([0.3, -0.2, 1.2], np.float32)
    c = (SIZE - 1) / 2
    cos, sin = np.cos(angles), np.sin(angles)
    zero = np.zeros_like(angles)
    # Keras's rotation matrix about the centre (see BaseImagePreprocessingLayer._compute_affine_matrix)
    matrix = np.stack([cos, -sin, c - c * cos + c * sin, sin, cos, c - c * sin - c * cos, zero, zero], axis=1)
    expected = keras.ops.image.affine_transform(x, matrix, interpolation="bilinear", fill_mode="reflect")
    np.testing.assert_allclose(numpy(augment.rotate(x, angles)), numpy(expected), atol=1e-4)


def np_rotate(image, angle):
    """Bilinear rotation about the centre, mirror fill (d c b a | a b c d): scipy's order-1 'reflect'."""
    c = (image.shape[0] - 1) / 2
    ys, xs = np.mgrid[0: image.shape[0], 0: image.shape[1]].astype(np.float64) - c
    rows = np.sin(angle) * xs + np.cos(angle) * ys + c
    cols = np.cos(angle) * xs - np.sin(angle) * ys + c
    return np.stack([ndimage.map_coordinates(image[:, :, k].astype(np.float64), [rows, cols], order=1,
                                             mode="reflect") for k in range(image.shape[2])], axis=-1)


# --- each transform with given draws, against numpy, image by image --------------------------

def test_flip_with_given_draws():
    x = images(4)
    flips = np.array([True, False, False, True])
    expected = np.stack([src[:, ::-1] if f else src for src, f in zip(x, flips)])
    np.testing.assert_array_equal(numpy(augment.flip_left_right(x, flips)), expected)


@pytest.mark.parametrize("crop", [24, 17, 1])
def test_crop_resize_with_given_corners(crop):
    x = np.sign(images(3))  # -1 and 1 only: the output must stay in [-1, 1]
    top, left = np.array([0, SIZE - crop, 3]), np.array([SIZE - crop, 5, 0])
    y = numpy(augment.crop_resize(x, top, left, crop))
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    for b in range(3):
        window = x[b, top[b]: top[b] + crop, left[b]: left[b] + crop]
        np.testing.assert_allclose(y[b], np_resize_bilinear(window, SIZE), atol=1e-5)
        np.testing.assert_allclose(y[b], tf.image.resize(window, (SIZE, SIZE), method="bilinear").numpy(),
                                   atol=1e-5)


def test_rotate_with_given_angles_matches_scipy_image_by_image():
    x = np.sign(images(4))
    angles = np.array([0.0, 0.31, -0.31, 3.0], np.float32)
    y = numpy(augment.rotate(x, angles))
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    np.testing.assert_array_equal(y[0], x[0])  # angle 0: every sample point is a pixel centre
    for b in range(4):
        np.testing.assert_allclose(y[b], np_rotate(x[b], float(angles[b])), atol=1e-4)


def test_rotation_angles_are_per_sample_and_within_the_factor():
    rotation = 0.05
    layer = build_augmenter(SIZE, flip=False, crop_fraction=1.0, rotation=rotation, seed=5)
    # A linear ramp is reproduced exactly by bilinear sampling, so in the centre (far from the
    # reflected border) out(y, x) = cos a (x - c) - sin a (y - c) + c, scaled: solve for a.
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    ramp = (xs / SIZE * 1.8 - 0.9)[None, :, :, None].repeat(3, axis=3).repeat(12, axis=0).astype(np.float32)
    y = numpy(layer(ramp, training=True))[..., 0].astype(np.float64)
    c = (SIZE - 1) / 2
    centre = (ys - c) ** 2 + (xs - c) ** 2 < (SIZE / 4) ** 2
    design = np.stack([xs[centre] - c, -(ys[centre] - c)], axis=1)
    angles = []
    for out in y:
        target = (out[centre] + 0.9) * SIZE / 1.8 - c
        (cos, sin), residual, _, _ = np.linalg.lstsq(design, target, rcond=None)
        assert residual[0] / len(target) < 1e-6
        assert abs(cos * cos + sin * sin - 1) < 1e-3
        angles.append(math.atan2(sin, cos))
    assert max(abs(a) for a in angles) <= rotation * 2 * math.pi + 1e-3
    assert len(np.unique(np.round(angles, 4))) == 12


# --- graphs, seeds, batches ------------------------------------------------------------------

@tensorflow_only
@pytest.mark.parametrize("batch", [1, 3])
def test_runs_on_batches_inside_an_xla_compiled_tf_function(batch):
    layer = build_augmenter(SIZE, seed=6)
    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    x = tf.constant(images(batch))
    first, second = step(x).numpy(), step(x).numpy()
    assert first.shape == x.shape and first.dtype == np.float32
    assert not np.allclose(first, second)  # a new draw every step


@jax_only
def test_runs_in_a_jitted_stateless_jax_step():
    layer, twin = build_augmenter(SIZE, seed=6), build_augmenter(SIZE, seed=6)
    step = jit_stateless(lambda x: layer(x, training=True), layer.variables)
    x = images(3)
    initial = [numpy(v) for v in values_of(layer.variables)]
    state = values_of(layer.variables)
    first, state = step(state, x)
    second, state = step(state, x)
    assert first.shape == x.shape and first.dtype == np.float32
    assert not np.allclose(first, second)  # the seed state advanced: a new draw every step
    # The same draws and the same new state as the eager layer with the same seed.
    for out in (first, second):
        np.testing.assert_allclose(numpy(out), numpy(twin(x, training=True)), atol=1e-5)
    for got, want in zip(state, values_of(twin.variables), strict=True):
        np.testing.assert_array_equal(numpy(got), numpy(want))
    for value, variable in zip(initial, layer.variables, strict=True):  # stateless: nothing assigned
        np.testing.assert_array_equal(numpy(variable.value), value)


def test_same_seed_same_augmentation():
    x = images(3)
    a = numpy(build_augmenter(SIZE, seed=7)(x, training=True))
    b = numpy(build_augmenter(SIZE, seed=7)(x, training=True))
    c = numpy(build_augmenter(SIZE, seed=8)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_get_config_round_trip():
    layer = build_augmenter(SIZE, flip=False, crop_fraction=0.8, rotation=0.1, seed=9)
    clone = TrainingAugmentation.from_config(layer.get_config())
    settings = (clone.image_size, clone.flip, clone.crop_fraction, clone.rotation, clone.seed)
    assert settings == (SIZE, False, 0.8, 0.1, 9)


def test_from_config_follows_the_experiment_config():
    assert augment.from_config(ExperimentConfig(augment=False)) is None
    config = ExperimentConfig(augment=True, image_size=64, aug_flip=False, aug_crop_fraction=0.7,
                              aug_rotation=0.02, seed=3)
    layer = augment.from_config(config)
    settings = (layer.image_size, layer.flip, layer.crop_fraction, layer.rotation, layer.seed)
    assert settings == (64, False, 0.7, 0.02, 3)
    assert layer.crop_size == round(0.7 * 64)


@pytest.mark.parametrize("kwargs,name", [
    (dict(image_size=0), "image_size"),
    (dict(image_size=SIZE, crop_fraction=0.0), "aug_crop_fraction"),
    (dict(image_size=SIZE, rotation=0.6), "aug_rotation"),
])
def test_bad_settings_name_the_parameter(kwargs, name):
    with pytest.raises(MonetKerasError, match=name):
        build_augmenter(**kwargs)


def test_wrong_image_size_is_a_one_line_error():
    with pytest.raises(MonetKerasError, match="image_size"):
        build_augmenter(SIZE, seed=1)(images(1, size=16), training=True)


@tensorflow_only
def test_replicas_of_a_mirrored_strategy_draw_different_augmentations():
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from monet_keras.model.augment import build_augmenter
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            layer = build_augmenter(32, seed=1)
        step = tf.function(lambda b: strategy.run(lambda x: layer(x, training=True), args=(b,)))
        x = np.repeat(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32), 2, axis=0)
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(2).repeat()
        data = iter(strategy.experimental_distribute_dataset(dataset))
        first = [t.numpy() for t in strategy.experimental_local_results(step(next(data)))]
        second = [t.numpy() for t in strategy.experimental_local_results(step(next(data)))]
        assert first[0].shape == (1, 32, 32, 3)
        assert not np.allclose(first[0], first[1])  # replicas differ
        assert not np.allclose(first[0], second[0])  # steps differ
        # Two replicas of one image each draw what one device draws for the batch of two.
        one_device = build_augmenter(32, seed=1)
        for replicas in (first, second):
            np.testing.assert_allclose(np.concatenate(replicas), one_device(x, training=True), atol=1e-4)
        print("OK")
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


# --- figure --------------------------------------------------------------------------------

def test_augmentation_examples_writes_a_png(tmp_path):
    x = images(3)
    path = tmp_path / "fig11.png"
    fig = augmentation.augmentation_examples(x, build_augmenter(SIZE, seed=1), n=2, save_path=path)
    axes = fig.get_axes()
    assert len(axes) == 3 * 3  # originals + 2 augmented rows, one column per image
    np.testing.assert_allclose(axes[1].images[0].get_array(), (x[1] + 1) / 2, atol=1e-6)
    assert not np.allclose(axes[3 + 1].images[0].get_array(), (x[1] + 1) / 2)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert sorted(os.listdir(tmp_path)) == ["fig11.png"]
