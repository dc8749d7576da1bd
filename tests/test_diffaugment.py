"""DiffAugment ops checked against independent numpy computations on tiny batches."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_keras.errors import MonetKerasError
from monet_keras.figures import augmentation
from monet_keras.model.diffaugment import OPS, diff_augment, parse_policy, stateless_seed

SIZES_AND_BATCHES = [(48, 3), (33, 1), (30, 3)]


def images(batch, size, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, (batch, size, size, 3)).astype(np.float32)


def np_shift(image, dy, dx):
    """out[i, j] = image[i + dy, j + dx], zero outside: written with padding and slicing."""
    h, w, _ = image.shape
    pad = max(h, w)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    return padded[pad + dy: pad + dy + h, pad + dx: pad + dx + w]


def recover_shift(source, shifted, bound):
    """All (dy, dx) with |dy|, |dx| <= bound that map ``source`` onto ``shifted`` exactly."""
    return [
        (dy, dx)
        for dy in range(-bound, bound + 1)
        for dx in range(-bound, bound + 1)
        if np.array_equal(np_shift(source, dy, dx), shifted)
    ]


# --- policy --------------------------------------------------------------------------------

def test_parse_policy_expands_color_and_keeps_order():
    assert parse_policy("color,translation,cutout") == (
        "brightness", "saturation", "contrast", "translation", "cutout"
    )
    assert parse_policy(" Cutout , brightness,,") == ("cutout", "brightness")
    assert parse_policy("") == ()


@pytest.mark.parametrize("policy", ["color,blur", "translate", 3])
def test_parse_policy_rejects_unknown_names_in_one_line(policy):
    with pytest.raises(MonetKerasError) as info:
        parse_policy(policy)
    message = str(info.value)
    assert "diffaugment" in message and "\n" not in message


def test_empty_policy_is_the_identity():
    x = tf.constant(images(2, 32))
    assert diff_augment(x, policy="", seed=1) is x


# --- every op: shape, dtype, gradients -----------------------------------------------------

@pytest.mark.parametrize("size,batch", SIZES_AND_BATCHES)
@pytest.mark.parametrize("op", OPS)
def test_op_keeps_shape_and_dtype(op, size, batch):
    x = tf.constant(images(batch, size))
    y = diff_augment(x, policy=op, seed=3)
    assert y.shape == x.shape and y.dtype == tf.float32
    assert np.all(np.isfinite(y.numpy()))


def test_full_policy_keeps_bfloat16():
    x = tf.cast(images(2, 32), tf.bfloat16)
    y = diff_augment(x, policy="color,translation,cutout", seed=3)
    assert y.shape == x.shape and y.dtype == tf.bfloat16


@pytest.mark.parametrize("op", OPS + ("color,translation,cutout",))
def test_gradients_reach_the_input(op):
    x = tf.Variable(images(3, 32, seed=1))
    weights = tf.constant(images(3, 32, seed=2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(diff_augment(x, policy=op, seed=5) * weights)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad).reshape(3, -1).sum(axis=1) > 0)  # every sample gets a gradient


def test_brightness_gradient_is_the_upstream_gradient():
    x = tf.Variable(images(2, 32, seed=1))
    weights = tf.constant(images(2, 32, seed=2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(diff_augment(x, policy="brightness", seed=5) * weights)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), weights.numpy(), rtol=0, atol=0)


# --- colour ops: per-sample magnitudes recovered in numpy ----------------------------------

def test_brightness_adds_one_offset_per_sample_in_range():
    x = images(6, 32)
    y = diff_augment(x, policy="brightness", seed=11).numpy()
    offsets = (y - x).reshape(6, -1)
    assert np.all(offsets.std(axis=1) < 1e-6)  # one constant per image
    b = offsets.mean(axis=1)
    assert np.all((b >= -0.5) & (b <= 0.5))
    assert len(np.unique(np.round(b, 5))) == 6  # drawn per sample


def test_saturation_scales_chroma_by_one_factor_per_sample():
    x = images(6, 32)
    y = diff_augment(x, policy="saturation", seed=12).numpy()
    mean = x.mean(axis=3, keepdims=True)
    # the per-pixel channel mean is kept; the deviation from it is scaled by s
    np.testing.assert_allclose(y.mean(axis=3, keepdims=True), mean, atol=1e-5)
    dev_in, dev_out = (x - mean).reshape(6, -1), (y - mean).reshape(6, -1)
    s = (dev_in * dev_out).sum(axis=1) / (dev_in * dev_in).sum(axis=1)
    np.testing.assert_allclose(dev_out, dev_in * s[:, None], atol=1e-5)
    assert np.all((s >= 0) & (s <= 2))
    assert len(np.unique(np.round(s, 4))) == 6


def test_contrast_scales_around_the_image_mean_by_one_factor_per_sample():
    x = images(6, 32)
    y = diff_augment(x, policy="contrast", seed=13).numpy()
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    dev_in, dev_out = (x - mean).reshape(6, -1), (y - mean).reshape(6, -1)
    c = (dev_in * dev_out).sum(axis=1) / (dev_in * dev_in).sum(axis=1)
    np.testing.assert_allclose(dev_out, dev_in * c[:, None], atol=1e-5)
    assert np.all((c >= 0.5) & (c <= 1.5))
    assert len(np.unique(np.round(c, 4))) == 6


# --- translation ---------------------------------------------------------------------------

@pytest.mark.parametrize("size,batch", SIZES_AND_BATCHES)
def test_translation_is_an_integer_shift_with_zero_fill(size, batch):
    bound = size // 8
    x = images(batch, size, low=0.5, high=1.0)  # no zeros of its own
    y = diff_augment(x, policy="translation", seed=21).numpy()
    for source, shifted in zip(x, y):
        matches = recover_shift(source, shifted, bound)
        assert len(matches) == 1
        dy, dx = matches[0]
        zeros = int((shifted[:, :, 0] == 0).sum())
        assert zeros == size * abs(dy) + size * abs(dx) - abs(dy) * abs(dx)
        assert np.array_equal(shifted[:, :, 0] == 0, shifted[:, :, 2] == 0)


def test_translation_shifts_are_per_sample_and_cover_the_whole_range():
    size, bound = 16, 2
    x = images(120, size, low=0.5, high=1.0)
    y = diff_augment(x, policy="translation", seed=22).numpy()
    shifts = [recover_shift(s, t, bound)[0] for s, t in zip(x, y)]
    assert {dy for dy, _ in shifts} == set(range(-bound, bound + 1))
    assert {dx for _, dx in shifts} == set(range(-bound, bound + 1))


# --- cutout --------------------------------------------------------------------------------

def zero_box(image):
    """(rows, cols, count) of the zeros of channel 0, after checking they form one rectangle."""
    zeros = image[:, :, 0] == 0
    assert np.array_equal(zeros, image[:, :, 1] == 0) and np.array_equal(zeros, image[:, :, 2] == 0)
    rows, cols = np.flatnonzero(zeros.any(axis=1)), np.flatnonzero(zeros.any(axis=0))
    assert len(rows) and np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
    assert np.array_equal(cols, np.arange(cols[0], cols[-1] + 1))
    assert zeros[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].all()
    return rows, cols, int(zeros.sum())


@pytest.mark.parametrize("size,batch", SIZES_AND_BATCHES)
def test_cutout_zeros_one_clipped_half_size_square(size, batch):
    cut = size // 2
    x = images(batch, size, low=0.5, high=1.0)
    y = diff_augment(x, policy="cutout", seed=31).numpy()
    for source, out in zip(x, y):
        rows, cols, count = zero_box(out)
        assert count == len(rows) * len(cols)
        keep = out[:, :, 0] != 0
        np.testing.assert_array_equal(out[:, :, 0][keep], source[:, :, 0][keep])
        for run, first, last in ((len(rows), rows[0], rows[-1]), (len(cols), cols[0], cols[-1])):
            assert cut - cut // 2 <= run <= cut  # at least half of the square is always inside
            if 0 < first and last < size - 1:
                assert run == cut


@pytest.mark.parametrize("size", [16, 15])
def test_cutout_positions_are_per_sample_and_reach_the_borders(size):
    cut = size // 2
    x = images(150, size, low=0.5, high=1.0)
    y = diff_augment(x, policy="cutout", seed=32).numpy()
    boxes = [zero_box(out) for out in y]
    counts = [count for _, _, count in boxes]
    assert cut * cut in counts  # fully inside: exactly (side // 2) ** 2 zeros
    assert min(counts) < cut * cut  # clipped at a border
    assert 0 in {rows[0] for rows, _, _ in boxes} and size - 1 in {rows[-1] for rows, _, _ in boxes}
    assert len({(rows[0], cols[0]) for rows, cols, _ in boxes}) > 20


# --- seeding, graphs, distribution ---------------------------------------------------------

def test_seeds_reproduce_and_seed_generators_advance():
    x = tf.constant(images(2, 32))
    policy = "color,translation,cutout"
    for seed in (4, tf.constant([4, 9], tf.int32)):
        np.testing.assert_array_equal(diff_augment(x, policy, seed=seed).numpy(),
                                      diff_augment(x, policy, seed=seed).numpy())
    generator = keras.random.SeedGenerator(4)
    step = tf.function(lambda x: diff_augment(x, policy, seed=generator), jit_compile=True)
    first, second = step(x).numpy(), step(x).numpy()
    assert first.shape == x.shape and not np.allclose(first, second)


def test_stateless_seed_accepts_every_kind_of_seed():
    for seed in (None, 7, tf.constant([1, 2], tf.int64), keras.random.SeedGenerator(1)):
        value = stateless_seed(seed)
        assert value.shape == (2,) and value.dtype == tf.int32


def test_dynamic_image_size_is_rejected():
    step = tf.function(lambda x: diff_augment(x, "translation", seed=1),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    with pytest.raises(MonetKerasError, match="static height and width"):
        step.get_concrete_function()


def test_replicas_of_a_mirrored_strategy_draw_different_augmentations(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from monet_keras.model.diffaugment import diff_augment
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            generator = keras.random.SeedGenerator(5)
        step = tf.function(lambda b: strategy.run(lambda x: diff_augment(x, seed=generator), args=(b,)))
        x = np.ones((2, 32, 32, 3), np.float32) * 0.5
        data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(2))
        out = [t.numpy() for t in strategy.experimental_local_results(step(next(iter(data))))]
        assert out[0].shape == (1, 32, 32, 3)
        assert not np.allclose(out[0], out[1])
        print("OK")
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


# --- figure --------------------------------------------------------------------------------

def test_diffaugment_examples_writes_a_png(tmp_path):
    x = images(2, 32)
    path = tmp_path / "fig13.png"
    fig = augmentation.diffaugment_examples(x, seed=1, save_path=path)
    axes = fig.get_axes()
    assert len(axes) == 2 * 6
    assert [ax.get_title() for ax in axes[:6]] == ["original", "brightness", "contrast", "saturation",
                                                   "translation", "cutout"]
    np.testing.assert_allclose(axes[0].images[0].get_array(), (x[0] + 1) / 2, atol=1e-6)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 100
    assert sorted(os.listdir(tmp_path)) == ["fig13.png"]
