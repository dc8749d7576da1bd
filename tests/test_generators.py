"""The generator options off in the report: Zhu et al.'s ResNet generator, resize-convolution
up-sampling, the U-Net without instance norm on its 1x1 bottleneck; their config fields and flags."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from monet_keras import cli
from monet_keras.config import REPORT_VARIANTS, ExperimentConfig, tiny, variant
from monet_keras.errors import MonetKerasError
from monet_keras.model import networks

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
# Under JAX every new weight shape compiles its initialiser and every new activation shape each
# op, so the tests share one base (test_networks.py's), one batch (2) and mostly 32 px; layer
# graphs are the same on every backend, so tests of the architecture alone run under TensorFlow.
BASE = 8
graph_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="a layer graph, the same on every backend")


def _generator(size=32, base=BASE, seed=0, **options):
    config = tiny(image_size=size, base_filters=base, **options)
    return networks.build_generator_from_config(config, "generator", seed=seed)


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _path(generator, first, last):
    """The generator's own layers from ``first`` to ``last`` as a model."""
    return keras.Model(generator.get_layer(first).input, generator.get_layer(last).output)


# --- reflection padding --------------------------------------------------------------------

@pytest.mark.parametrize("height, width, pad", [(6, 9, 1), (6, 9, 3), (4, 4, 3)])
def test_reflection_pad_is_numpys_reflect(height, width, pad):
    inputs = keras.Input((height, width, 2))
    model = keras.Model(inputs, networks.reflection_pad(inputs, pad, "pad"))
    x = np.random.default_rng(pad).normal(size=(2, height, width, 2)).astype(np.float32)
    want = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(np.asarray(model(x)), want)


# --- the ResNet generator ------------------------------------------------------------------

def _zhu_convolutions(base, blocks):
    """(kernel side, channels in, channels out) of Zhu et al.'s ResnetGenerator's convolutions in
    order: c7s1-b, d2b, d4b, two 3x3 per residual block, u2b, ub, c7s1-3."""
    return ([(7, 3, base), (3, base, 2 * base), (3, 2 * base, 4 * base)]
            + [(3, 4 * base, 4 * base)] * (2 * blocks)
            + [(3, 4 * base, 2 * base), (3, 2 * base, base), (7, base, 3)])


def _kernel_shapes(model):
    """(side, in, out) of every convolution; a transposed convolution's kernel is (k, k, out, in)."""
    shapes = []
    for layer in model.layers:
        if isinstance(layer, CONVOLUTIONS):
            k, _, a, b = layer.kernel.shape
            shapes.append((k, b, a) if isinstance(layer, keras.layers.Conv2DTranspose) else (k, a, b))
    return shapes


@graph_only
def test_resnet_parameter_count_at_256():
    generator = networks.build_resnet_generator(256, 64)
    convolutions = _zhu_convolutions(64, blocks=9)
    # no bias before instance norm (its beta is one); gamma and beta per channel; the last conv has a bias
    count = sum(k * k * c_in * c_out + 2 * c_out for k, c_in, c_out in convolutions[:-1])
    k, c_in, c_out = convolutions[-1]
    count += k * k * c_in * c_out + c_out
    assert _kernel_shapes(generator) == convolutions
    assert generator.count_params() == count == 11_383_427
    assert generator.output_shape == (None, 256, 256, 3)
    assert generator.get_layer("down2_conv").output.shape[1:] == (64, 64, 256)


@graph_only
@pytest.mark.parametrize("size, blocks", [(128, 6), (32, 6)])
def test_resnet_blocks_below_256(size, blocks):
    generator = networks.build_resnet_generator(size, BASE, upsample="resize")
    assert _kernel_shapes(generator) == _zhu_convolutions(BASE, blocks)


@pytest.mark.parametrize("size, options", [
    (32, dict(generator="resnet")),
    (32, dict(generator="resnet", upsample="resize")),
    (32, dict(upsample="resize", unet_inner_norm=False)),
    pytest.param(64, dict(generator="resnet"), marks=graph_only),
    pytest.param(128, dict(generator="resnet", upsample="resize"), marks=graph_only),
    pytest.param(128, dict(upsample="resize"), marks=graph_only),
])
def test_shapes_and_range(size, options):
    generator = _generator(size, **options)
    y = np.asarray(generator(_images(2, size), training=False))
    assert y.shape == (2, size, size, 3)
    assert np.all(np.abs(y) <= 1) and np.all(y.std(axis=(1, 2, 3)) > 0)
    transposed = [layer.name for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    if options.get("upsample") == "resize":  # every up-sampling, the U-Net's last layer's too
        assert transposed == []
        assert sum(isinstance(layer, keras.layers.UpSampling2D) for layer in generator.layers) == \
            (2 if options.get("generator") == "resnet" else int(np.log2(size)))
    else:
        assert transposed == ["up1_deconv", "up2_deconv"]


def test_instance_norm_is_per_image_and_seeded():
    generator = _generator(generator="resnet", seed=3)
    x = _images(3, 32, seed=1)
    # the second image gives the same output next to another one
    first = np.asarray(generator(x[:2], training=False))
    np.testing.assert_allclose(np.asarray(generator(x[1:], training=False))[0], first[1], atol=1e-5)
    again = _generator(generator="resnet", seed=3).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(generator.get_weights(), again, strict=True))
    weights = [w.ravel()[:8] for w in again if w.ndim == 4]  # every kernel draws its own stream
    assert len({tuple(w) for w in weights}) == len(weights)


# --- the U-Net's innermost level ---------------------------------------------------------

def _leaky_relu(x):
    return np.where(x > 0, x, 0.3 * x)


def _unit_gammas(generator, but=()):
    """Instance-norm gammas 1 instead of the tutorial's N(0, 0.02), which makes an initial
    generator's output nearly constant: the controls below then change it clearly."""
    for layer in generator.layers:
        if isinstance(layer, keras.layers.GroupNormalization) and layer.name not in but:
            layer.gamma.assign(np.ones(layer.gamma.shape))


def test_unet_bottleneck_norm_passes_only_its_beta():
    # Over a 1x1 map instance norm computes gamma * (x - mean) / sqrt(variance + eps) + beta with
    # mean = x and variance = 0: beta, up to the float32 rounding of x * gamma / sqrt(eps) (Keras
    # adds x * inv and beta - mean * inv). So the innermost block outputs LeakyReLU(beta)
    # whatever the image, its kernel and its gamma.
    rng = np.random.default_rng(0)
    x = _images(2, 32)
    generator = _generator()  # 32 px: down5 is the 1x1 level
    conv, norm = generator.get_layer("down5_conv"), generator.get_layer("down5_norm")
    _unit_gammas(generator, but=[norm.name])
    norm.beta.assign(rng.normal(size=norm.beta.shape))
    pre_norm = np.asarray(_path(generator, "down1_conv", "down5_conv")(x))
    largest = np.abs(pre_norm * np.asarray(norm.gamma)).max() / np.sqrt(norm.epsilon)
    bottleneck = np.asarray(_path(generator, "down1_conv", "down5_lrelu")(x))
    assert bottleneck.shape == (2, 1, 1, norm.beta.shape[0])
    want = np.broadcast_to(_leaky_relu(np.asarray(norm.beta)), bottleneck.shape)
    np.testing.assert_allclose(bottleneck, want, rtol=0, atol=8 * np.finfo(np.float32).eps * largest)
    # So the output is the same for any innermost kernel and gamma (within that rounding, grown
    # through the decoder) ...
    before = np.asarray(generator(x, training=False))
    conv.kernel.assign(rng.normal(size=conv.kernel.shape))
    norm.gamma.assign(rng.normal(0, 0.02, size=norm.gamma.shape))
    np.testing.assert_allclose(np.asarray(generator(x, training=False)), before, rtol=0, atol=1e-4)
    # ... while the beta it passes does reach the output.
    norm.beta.assign(rng.normal(size=norm.beta.shape))
    assert np.abs(np.asarray(generator(x, training=False)) - before).max() > 1e-2


def test_unet_without_bottleneck_norm_passes_the_image():
    rng = np.random.default_rng(1)
    x = _images(2, 32)
    generator = _generator(unet_inner_norm=False)
    _unit_gammas(generator)
    names = {layer.name for layer in generator.layers}
    assert "down5_norm" not in names and {"down2_norm", "down4_norm", "up1_norm"} <= names
    bottleneck = np.asarray(_path(generator, "down1_conv", "down5_lrelu")(x))
    assert np.abs(bottleneck - bottleneck[:1]).max() > 1e-2  # it differs from image to image
    before = np.asarray(generator(x, training=False))
    conv = generator.get_layer("down5_conv")
    conv.kernel.assign(rng.normal(size=conv.kernel.shape))
    assert np.abs(np.asarray(generator(x, training=False)) - before).max() > 1e-2


# --- up-sampling: transposed convolution vs resize-convolution -----------------------------

def _transposed_conv_same(x, kernel):
    """Conv2DTranspose(strides=2, padding="same") by its definition: the transpose of a stride-2
    'same' convolution of the 2H x 2W output, which pads k - 2 pixels, the smaller half first
    (TensorFlow's rule): input pixel (m, n) adds kernel[t, u] @ x[m, n] to output pixel
    (2m - first + t, 2n - first + u). ``kernel``: (k, k, out, in)."""
    batch, height, width, _ = x.shape
    k, _, c_out, _ = kernel.shape
    first = (k - 2) // 2
    out = np.zeros((batch, 2 * height, 2 * width, c_out))
    for m in range(height):
        for n in range(width):
            for t in range(k):
                for u in range(k):
                    r, c = 2 * m - first + t, 2 * n - first + u
                    if 0 <= r < 2 * height and 0 <= c < 2 * width:
                        out[:, r, c] += x[:, m, n] @ kernel[t, u].T
    return out


def test_unet_transposed_convolution_draws_a_checkerboard_resize_does_not():
    # 4x4 stride 2: every output pixel gets 2 x 2 taps, but alternate pixels get different ones
    # (rows 2m: taps 1 and 3, rows 2m + 1: taps 0 and 2), so a constant input gives four values
    # in a 2-pixel period unless the learned taps happen to balance.
    rng = np.random.default_rng(2)
    transpose, resize = _generator(), _generator(upsample="resize")
    deconv, conv = transpose.get_layer("up2_deconv"), resize.get_layer("up2_conv")
    deconv.kernel.assign(rng.normal(size=deconv.kernel.shape))
    conv.kernel.assign(rng.normal(size=conv.kernel.shape))
    shape = (1, *transpose.get_layer("up2_deconv").input.shape[1:])
    x = np.full(shape, 0.5, np.float32)

    y = np.asarray(_path(transpose, "up2_deconv", "up2_deconv")(x))
    np.testing.assert_allclose(y, _transposed_conv_same(x, np.asarray(deconv.kernel)), rtol=1e-4, atol=1e-4)
    interior = y[0, 1:-1, 1:-1]
    phases = [interior[a::2, b::2] for a in (0, 1) for b in (0, 1)]
    for phase in phases:
        np.testing.assert_allclose(phase, np.broadcast_to(phase[:1, :1], phase.shape), rtol=1e-4, atol=1e-4)
    values = np.array([phase[0, 0] for phase in phases])  # (4, channels)
    assert np.all(values.max(axis=0) - values.min(axis=0) > 1e-2)

    y = np.asarray(_path(resize, "up2_upsample", "up2_conv")(x))
    assert y.shape == (1, 2 * shape[1], 2 * shape[2], conv.kernel.shape[-1])
    want = 0.5 * np.asarray(conv.kernel).sum(axis=(0, 1, 2))  # every interior pixel sees the whole kernel
    np.testing.assert_allclose(y[0, 1:-1, 1:-1], np.broadcast_to(want, y[0, 1:-1, 1:-1].shape), rtol=1e-4,
                               atol=1e-4)


def test_resnet_transposed_convolution_draws_a_checkerboard_resize_does_not():
    # 3x3 stride 2 with an all-ones kernel: even output rows get 2 taps, odd rows 1, so a constant
    # c over n channels gives c * n * (2 or 1) * (2 or 1); the resize-convolution (reflection
    # padded) gives c * n * 9 everywhere.
    transpose, resize = _generator(generator="resnet"), _generator(generator="resnet", upsample="resize")
    deconv, conv = transpose.get_layer("up1_deconv"), resize.get_layer("up1_conv")
    deconv.kernel.assign(np.ones(deconv.kernel.shape))
    conv.kernel.assign(np.ones(conv.kernel.shape))
    shape = (1, *deconv.input.shape[1:])
    channels, c = shape[-1], 0.25
    x = np.full(shape, c, np.float32)

    y = np.asarray(_path(transpose, "up1_deconv", "up1_deconv")(x))[0]
    taps = np.where(np.arange(2 * shape[1]) % 2 == 0, 2.0, 1.0)
    taps[0] = 1.0  # output 0 has no input row -1
    want = c * channels * taps[:, None, None] * taps[None, :, None]
    np.testing.assert_allclose(y, np.broadcast_to(want, y.shape), rtol=1e-5)
    np.testing.assert_allclose(y, _transposed_conv_same(x, np.asarray(deconv.kernel))[0], rtol=1e-5)

    y = np.asarray(_path(resize, "up1_upsample", "up1_conv")(x))[0]
    assert y.shape == (2 * shape[1], 2 * shape[2], conv.kernel.shape[-1])
    np.testing.assert_allclose(y, np.full(y.shape, c * channels * 9), rtol=1e-5)


# --- saved generators load with Keras alone -----------------------------------------------

LOAD_ALONE = """\
import sys
sys.modules["monet_keras"] = None  # importing monet_keras (or anything in it) now fails
import keras
import numpy as np

x = np.load(sys.argv[1])
for path in sys.argv[2:]:
    np.save(f"{path}.npy", keras.saving.load_model(path, compile=False).predict(x, verbose=0))
print(keras.backend.backend())
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(images, [(.keras path, the saved generator's output)]) for each new generator option."""
    folder = tmp_path_factory.mktemp("generators")
    x = _images(2, 32, seed=5)
    np.save(folder / "x.npy", x)
    options = [dict(generator="resnet"), dict(generator="resnet", upsample="resize"),
               dict(upsample="resize", unet_inner_norm=False)]
    outputs = []
    for i, option in enumerate(options):
        generator = _generator(seed=i, **option)
        path = str(folder / f"g{i}.keras")
        keras.saving.save_model(generator, path)
        outputs.append((path, np.asarray(generator(x, training=False))))
    return folder / "x.npy", outputs


def test_saved_generators_hold_only_keras_layers(saved):
    x, outputs = saved
    for path, want in outputs:
        model = keras.saving.load_model(path, compile=False)
        assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"keras"}
        np.testing.assert_allclose(np.asarray(model(np.load(x), training=False)), want, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the classes a .keras file names are the same on every backend; a JAX process "
                           "would spend a minute compiling")
def test_saved_generators_load_without_monet_keras(saved):
    x, outputs = saved
    paths = [path for path, _ in outputs]
    done = subprocess.run([sys.executable, "-c", LOAD_ALONE, str(x), *paths], capture_output=True, text=True,
                          cwd=str(x.parent), timeout=300,
                          env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == keras.backend.backend()
    for path, want in outputs:
        np.testing.assert_allclose(np.load(f"{path}.npy"), want, atol=1e-5)


# --- config and command line ---------------------------------------------------------------

def test_report_variants_keep_the_report_generator():
    for name, settings in REPORT_VARIANTS.items():
        assert not {"model", "generator", "upsample", "unet_inner_norm"} & set(settings)
        config = variant(name)
        assert (config.model, config.generator, config.upsample, config.unet_inner_norm) == \
            ("cyclegan", "unet", "transpose", True)
    # ... and the config builds exactly build_generator's U-Net
    ours = networks.build_generator_from_config(tiny(), "g", seed=7)
    report = networks.build_generator(32, 8, seed=7, name="g")  # tiny(): 32 px, base 8
    assert [layer.name for layer in ours.layers] == [layer.name for layer in report.layers]
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), report.get_weights(), strict=True))


@pytest.mark.parametrize("change, field", [
    ({"generator": "vgg"}, "generator"),
    ({"upsample": "bilinear"}, "upsample"),
    ({"unet_inner_norm": "sometimes"}, "unet_inner_norm"),
])
def test_bad_values_name_the_field(change, field):
    with pytest.raises(MonetKerasError, match=rf"^bad parameter {field}=[^\n]*$"):
        ExperimentConfig().replace(**change).validate()


def test_builders_name_bad_values():
    with pytest.raises(MonetKerasError, match="upsample='nearest'"):
        networks.build_resnet_generator(32, BASE, upsample="nearest")
    with pytest.raises(MonetKerasError, match="image_size=48"):
        networks.build_resnet_generator(48, BASE)
    config = tiny()
    config.generator = "vgg"  # not validated
    with pytest.raises(MonetKerasError, match="generator='vgg'"):
        networks.build_generator_from_config(config, "g")


def test_train_flags_and_set_reach_the_config(tmp_path):
    parse = cli.build_parser().parse_args
    args = parse(["train", "--out", "o", "--data", str(tmp_path), "--model", "cut", "--generator", "resnet",
                  "--upsample", "resize", "--no-unet-inner-norm"])
    config = cli.config_from_args(args)
    assert (config.model, config.generator, config.upsample, config.unet_inner_norm) == \
        ("cut", "resnet", "resize", False)
    args = parse(["train", "--out", "o", "--data", str(tmp_path), "--set", "unet_inner_norm=false",
                  "--unet-inner-norm"])  # --set comes last
    assert cli.config_from_args(args).unet_inner_norm is False
    default = cli.config_from_args(parse(["train", "--out", "o", "--data", str(tmp_path)]))
    assert (default.model, default.generator, default.upsample, default.unet_inner_norm) == \
        ("cyclegan", "unet", "transpose", True)
