"""DiffAugment ops checked against independent numpy computations on tiny batches, on the
TensorFlow and the JAX backend."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image
from stateless_jit import jax_only, jit_stateless, tensorflow_only

from monet_keras.errors import MonetKerasError
from monet_keras.figures import augmentation
from monet_keras.model import diffaugment, randomness
from monet_keras.model.diffaugment import OPS, diff_augment, parse_policy

SIZES_AND_BATCHES = [(48, 3), (33, 1), (30, 3)]
POLICY = "color,translation,cutout"


def images(batch, size, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, (batch, size, size, 3)).astype(np.float32)


def numpy(x):
    return ops.convert_to_numpy(x)


def gradient(loss, x):
    """d loss(x) / dx for the numpy array ``x``, by the backend's own autodiff."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(loss)(ops.convert_to_tensor(x)))
    import tensorflow as tf

    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = loss(x)
    return tape.gradient(value, x).numpy()


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
    x = ops.convert_to_tensor(images(2, 32))
    assert diff_augment(x, policy="", seed=1) is x


# --- every op: shape, dtype, gradients -----------------------------------------------------

@pytest.mark.parametrize("size,batch", SIZES_AND_BATCHES)
@pytest.mark.parametrize("op", OPS)
def test_op_keeps_shape_and_dtype(op, size, batch):
    x = images(batch, size)
    y = diff_augment(x, policy=op, seed=3)
    assert y.shape == x.shape and keras.backend.standardize_dtype(y.dtype) == "float32"
    assert np.all(np.isfinite(numpy(y)))


def test_full_policy_keeps_bfloat16():
    x = ops.cast(images(2, 32), "bfloat16")
    y = diff_augment(x, policy=POLICY, seed=3)
    assert y.shape == x.shape and keras.backend.standardize_dtype(y.dtype) == "bfloat16"


@pytest.mark.parametrize("op", OPS + (POLICY,))
def test_gradients_reach_the_input(op):
    weights = images(3, 32, seed=2)
    grad = gradient(lambda x: ops.sum(diff_augment(x, policy=op, seed=5) * weights), images(3, 32, seed=1))
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad).reshape(3, -1).sum(axis=1) > 0)  # every sample gets a gradient


def test_brightness_gradient_is_the_upstream_gradient():
    weights = images(2, 32, seed=2)
    grad = gradient(lambda x: ops.sum(diff_augment(x, policy="brightness", seed=5) * weights),
                    images(2, 32, seed=1))
    np.testing.assert_allclose(grad, weights, rtol=0, atol=0)


def test_translation_gradient_is_the_upstream_gradient_shifted_back():
    # out[i, j] = x[i + dy, j + dx]: d sum(out * w) / dx[k, l] = w[k - dy, l - dx] (zero outside).
    weights = images(2, 16, seed=2)
    dy, dx = np.array([2, -3]), np.array([-1, 0])
    grad = gradient(lambda x: ops.sum(diffaugment.shift(x, dy, dx) * weights), images(2, 16, seed=1))
    for b in range(2):
        np.testing.assert_allclose(grad[b], np_shift(weights[b], -dy[b], -dx[b]), rtol=0, atol=0)


# --- every op with given magnitudes, against numpy, image by image -------------------------

def test_colour_ops_with_given_magnitudes():
    x = images(3, 16)
    b = np.array([-0.5, 0.0, 0.37], np.float32)
    s = np.array([0.0, 1.0, 1.9], np.float32)
    c = np.array([0.5, 1.0, 1.45], np.float32)
    bright = numpy(diffaugment.shift_brightness(x, b))
    saturated = numpy(diffaugment.scale_saturation(x, s))
    contrasted = numpy(diffaugment.scale_contrast(x, c))
    for i, image in enumerate(x):
        np.testing.assert_allclose(bright[i], image + b[i], atol=1e-6)
        pixel_mean = image.mean(axis=2, keepdims=True)
        np.testing.assert_allclose(saturated[i], (image - pixel_mean) * s[i] + pixel_mean, atol=1e-5)
        np.testing.assert_allclose(contrasted[i], (image - image.mean()) * c[i] + image.mean(), atol=1e-5)


def test_shift_with_given_offsets():
    x = images(5, 16)
    dy, dx = np.array([0, 2, -2, 16, -5]), np.array([0, -1, 2, 0, 15])
    y = numpy(diffaugment.shift(x, dy, dx))
    for b in range(5):
        np.testing.assert_array_equal(y[b], np_shift(x[b], dy[b], dx[b]))
    assert not y[3].any()  # shifted by the whole height: nothing left


def np_cut(image, y0, x0, cut_h, cut_w):
    out = image.copy()
    h, w, _ = image.shape
    out[np.clip(y0, 0, h): np.clip(y0 + cut_h, 0, h), np.clip(x0, 0, w): np.clip(x0 + cut_w, 0, w)] = 0
    return out


def test_cut_with_given_corners():
    x = images(4, 15)
    y0, x0 = np.array([0, -3, 10, 4]), np.array([-7, 12, 3, 4])
    y = numpy(diffaugment.cut(x, y0, x0, 7, 7))
    for b in range(4):
        np.testing.assert_array_equal(y[b], np_cut(x[b], y0[b], x0[b], 7, 7))


def test_translation_and_cutout_keep_the_range():
    x = np.sign(images(8, 32))  # -1 and 1 only: the extremes of the range
    y = numpy(diff_augment(x, policy="translation,cutout", seed=9))
    assert set(np.unique(y)) <= {-1.0, 0.0, 1.0}
    assert np.all((y == 0).reshape(8, -1).any(axis=1))  # every image is cut


# --- colour ops: per-sample magnitudes recovered in numpy ----------------------------------

def test_brightness_adds_one_offset_per_sample_in_range():
    x = images(6, 32)
    y = numpy(diff_augment(x, policy="brightness", seed=11))
    offsets = (y - x).reshape(6, -1)
    assert np.all(offsets.std(axis=1) < 1e-6)  # one constant per image
    b = offsets.mean(axis=1)
    assert np.all((b >= -0.5) & (b <= 0.5))
    assert len(np.unique(np.round(b, 5))) == 6  # drawn per sample


def test_saturation_scales_chroma_by_one_factor_per_sample():
    x = images(6, 32)
    y = numpy(diff_augment(x, policy="saturation", seed=12))
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
    y = numpy(diff_augment(x, policy="contrast", seed=13))
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
    y = numpy(diff_augment(x, policy="translation", seed=21))
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
    y = numpy(diff_augment(x, policy="translation", seed=22))
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
    y = numpy(diff_augment(x, policy="cutout", seed=31))
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
    y = numpy(diff_augment(x, policy="cutout", seed=32))
    boxes = [zero_box(out) for out in y]
    counts = [count for _, _, count in boxes]
    assert cut * cut in counts  # fully inside: exactly (side // 2) ** 2 zeros
    assert min(counts) < cut * cut  # clipped at a border
    assert 0 in {rows[0] for rows, _, _ in boxes} and size - 1 in {rows[-1] for rows, _, _ in boxes}
    assert len({(rows[0], cols[0]) for rows, cols, _ in boxes}) > 20


# --- seeding, graphs, distribution ---------------------------------------------------------

def test_seeds_reproduce_and_seed_generators_advance():
    x = images(2, 32)
    augment = lambda seed: numpy(diff_augment(x, POLICY, seed=seed))  # noqa: E731
    np.testing.assert_array_equal(augment(4), augment(4))
    assert not np.allclose(augment(4), augment(5))
    generator = keras.random.SeedGenerator(4)
    first, second = augment(generator), augment(generator)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, augment(4))  # an int seed starts where SeedGenerator(int) does


def test_seed_generator_accepts_every_kind_of_seed():
    generator = keras.random.SeedGenerator(1)
    assert randomness.seed_generator(generator) is generator
    for seed in (None, 7):
        assert isinstance(randomness.seed_generator(seed), keras.random.SeedGenerator)
    draw = lambda seed: numpy(randomness.uniform(50, randomness.seed_generator(seed)))  # noqa: E731
    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.allclose(draw(None), draw(None))


def test_per_sample_draws_are_in_range_and_cover_it():
    generator = keras.random.SeedGenerator(2)
    floats = numpy(randomness.uniform(4000, generator, -0.5, 0.5))
    ints = numpy(randomness.randint(4000, generator, -2, 3))
    assert floats.shape == ints.shape == (4000,) and ints.dtype == np.int32
    assert floats.min() >= -0.5 and floats.max() < 0.5 and len(np.unique(floats)) > 3990
    # U(-0.5, 0.5): mean 0 and variance 1/12, within 5 standard errors
    assert abs(floats.mean()) < 5 * np.sqrt(1 / 12 / 4000)
    assert abs(floats.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / 4000)
    assert set(ints) == {-2, -1, 0, 1, 2}
    assert abs(np.corrcoef(floats[:-1], floats[1:])[0, 1]) < 5 / np.sqrt(4000)  # neighbours independent


@tensorflow_only
def test_seed_generators_advance_inside_an_xla_compiled_tf_function():
    import tensorflow as tf

    x = tf.constant(images(2, 32))
    for jit_compile in (True, False):
        generator = keras.random.SeedGenerator(4)
        step = tf.function(lambda x, g=generator: diff_augment(x, POLICY, seed=g), jit_compile=jit_compile)
        first, second = step(x).numpy(), step(x).numpy()
        assert first.shape == x.shape and not np.allclose(first, second)
    # Without XLA the graph draws what eager code draws (XLA's stateless random ops use another
    # algorithm, so its draws differ).
    np.testing.assert_allclose(first, numpy(diff_augment(x, POLICY, seed=4)), atol=1e-5)


@jax_only
def test_runs_in_a_jitted_stateless_jax_step():
    generator, twin = keras.random.SeedGenerator(4), keras.random.SeedGenerator(4)
    step = jit_stateless(lambda x: diff_augment(x, POLICY, seed=generator), [generator.state])
    x = images(2, 32)
    initial = numpy(generator.state.value)
    first, state = step([generator.state.value], x)
    second, state = step(state, x)
    assert first.shape == x.shape and not np.allclose(first, second)  # the state advanced
    # The same draws and the same new state as eager calls with the same seed.
    for out in (first, second):
        np.testing.assert_allclose(numpy(out), numpy(diff_augment(x, POLICY, seed=twin)), atol=1e-5)
    np.testing.assert_array_equal(numpy(state[0]), numpy(twin.state.value))
    np.testing.assert_array_equal(numpy(generator.state.value), initial)  # stateless: nothing assigned


@tensorflow_only
def test_dynamic_image_size_is_rejected():
    import tensorflow as tf

    step = tf.function(lambda x: diff_augment(x, "translation", seed=1),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    with pytest.raises(MonetKerasError, match="static height and width"):
        step.get_concrete_function()


@tensorflow_only
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
        # Two replicas of one image each draw what one device draws for the batch of two.
        one_device = diff_augment(x, seed=keras.random.SeedGenerator(5))
        np.testing.assert_allclose(np.concatenate(out), one_device, atol=1e-5)
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
