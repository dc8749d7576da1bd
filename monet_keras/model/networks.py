"""The generators and the discriminator, sized by parameters.

- :func:`build_generator`: the report's U-Net (the Kaggle tutorial's architecture). Encoder
  blocks Conv2D(4x4, stride 2, no bias, N(0, 0.02)) -> instance norm (not on the first block)
  -> LeakyReLU(0.3, Keras's default as in the tutorial); filters base*(1, 2, 4, 8, 8, ...) down
  to 1x1. Decoder blocks Conv2DTranspose(4x4, stride 2) -> instance norm -> Dropout(0.5) on the
  first three -> ReLU, each concatenated with the mirror skip; a last Conv2DTranspose(3) + tanh.
  Depth is log2(image_size), so 256 px gives the tutorial's 8 levels and 54,414,979 parameters.
  Two options, off in the report: ``inner_norm=False`` leaves instance norm off the innermost
  (1x1) encoder block, as Zhu et al.'s U-Net does: over a 1x1 map instance norm outputs its beta
  whatever the input, so with it the bottleneck passes a learned constant and nothing of the
  image. ``upsample="resize"`` (below).
- :func:`build_resnet_generator`: Zhu et al.'s CycleGAN generator (their ResnetGenerator):
  reflection pad 3, 7x7 conv (base), two 3x3 stride-2 convs (2 base, 4 base), residual blocks
  (reflection pad 1, 3x3 conv, norm, ReLU, reflection pad 1, 3x3 conv, norm, plus the input),
  two 3x3 stride-2 transposed convs (2 base, base), reflection pad 3, 7x7 conv (3) + tanh; every
  conv but the last without bias and followed by instance norm and ReLU. 9 residual blocks at 256
  px and above, 6 below (:func:`resnet_blocks`); 11,383,427 parameters at 256 px with base 64.
  The stride-2 layers use Keras's "same" padding, which pads after (bottom, right) where
  PyTorch's ``padding=1`` in effect pads before: the same network on the mirrored image, with
  flipped kernels.
- :func:`build_generator_from_config`: the generator an ExperimentConfig names.
- :func:`build_discriminator`: PatchGAN. Down base, 2*base (no norm on the first), 4*base,
  zero-pad, Conv 8*base 4x4 stride 1, norm, LeakyReLU, zero-pad, Conv 1 4x4 stride 1: a 30x30
  map of logits at 256 px (2,765,569 parameters with base 64).

``upsample``: "transpose" (the report's) up-samples with stride-2 transposed convolutions;
"resize" with Odena et al.'s (2016) resize-convolution instead: nearest-neighbour x2, then a
stride-1 3x3 convolution with the same filters (zero "same" padding in the U-Net, reflection
padding in the ResNet, as their other convolutions). A transposed convolution adds kernel taps
into alternate output pixels unevenly unless its taps happen to balance, which draws a 2-pixel
checkerboard; after nearest-neighbour resizing every output pixel sees the whole kernel. The
kernel is 3x3, not 4x4: an odd kernel is centred, so "same" padding is symmetric and the output
stays aligned with its input (a 4x4 one shifts it by half a pixel), at 9/16 of the weights.

Instance norm is ``keras.layers.GroupNormalization(groups=-1)`` with the tutorial's gamma
initialiser N(0, 0.02), beta 0 and epsilon 1e-3 (tensorflow-addons is not needed). Reflection padding is
built from Keras's Cropping2D and Concatenate layers (:func:`reflection_pad`): every network
here holds only Keras's own layers, so a saved ``.keras`` generator loads without this package.

``small_map_matmul=True`` builds the U-Net's and the PatchGAN's 4x4 stride-2 convolutions from
:mod:`monet_keras.accel.smallconv`: the same layers, weights and config, computing the
convolutions on maps of at most 4x4 pixels as one matmul (faster on CPU, same results within
float round-off; :mod:`monet_keras.accel.policy` decides when). False (default) gives Keras's
own layers: the tutorial's model, and what is saved to ``.keras`` files, so they load without
this package. The ResNet has no such layers (its smallest maps are a quarter of the image).

Initialiser seeds: a network built with ``seed=s`` seeds its layers ``s, s + 1, ...`` (at most
:data:`SEEDS_PER_NETWORK` of them), so networks whose seeds are that far apart never share a
random stream (:func:`network_seed`).
"""

import math

import keras
from keras import layers

from monet_keras.accel import smallconv
from monet_keras.config import GENERATORS, UPSAMPLINGS
from monet_keras.errors import MonetKerasError

_CONV_INIT_STDDEV = 0.02
_GAMMA_INIT_MEAN = 0.0  # the tutorial draws instance-norm gamma from N(0, 0.02)
# The tutorial's tensorflow-addons InstanceNormalization adds 1e-3 to the variance (PyTorch's
# InstanceNorm2d: 1e-5). It matters: with gamma ~ N(0, 0.02) the deeper maps start with variances
# far below 1e-3, where the epsilon, not the map's own spread, sets the scale.
INSTANCE_NORM_EPSILON = 1e-3


def _conv_init(seed):
    return keras.initializers.RandomNormal(0.0, _CONV_INIT_STDDEV, seed=seed)


def _instance_norm(seed, name, epsilon):
    return layers.GroupNormalization(
        groups=-1, epsilon=epsilon,
        gamma_initializer=keras.initializers.RandomNormal(_GAMMA_INIT_MEAN, _CONV_INIT_STDDEV, seed=seed),
        name=name)


SEEDS_PER_NETWORK = 1000  # far more than any network here uses (a 256-px U-Net 45, the ResNet 47)


def network_seed(seed, index):
    """The first initialiser seed of network ``index`` (0, 1, ...) of a model seeded ``seed``: the
    networks get disjoint ranges of :data:`SEEDS_PER_NETWORK` seeds, so no two layers anywhere in
    the model draw the same random stream (a shared integer seed gives identical draws, or
    identical prefixes for different shapes)."""
    return (int(seed) * 16 + index) * SEEDS_PER_NETWORK


class _Seeds:
    """Distinct deterministic initialiser seeds ``seed, seed + 1, ...``, so a network is
    reproducible from one seed; None when ``seed`` is None (unseeded)."""

    def __init__(self, seed):
        self.first = None if seed is None else int(seed)
        self.count = 0

    def __call__(self):
        if self.first is None:
            return None
        if self.count == SEEDS_PER_NETWORK:
            raise ValueError(f"a network needs more than {SEEDS_PER_NETWORK} initialiser seeds")
        self.count += 1
        return self.first + self.count - 1


def _depth(image_size):
    if image_size < 32 or image_size & (image_size - 1):
        raise MonetKerasError(f"bad parameter image_size={image_size}: expected a power of two, at least 32")
    return int(math.log2(image_size))


def _check_upsample(upsample):
    if upsample not in UPSAMPLINGS:
        raise MonetKerasError(f"bad parameter upsample={upsample!r}: "
                              f"expected one of {', '.join(UPSAMPLINGS)}")


def _conv_layers(small_map_matmul):
    """(Conv2D, Conv2DTranspose) classes for the 4x4 stride-2 blocks."""
    if small_map_matmul:
        return smallconv.Conv2D, smallconv.Conv2DTranspose
    return layers.Conv2D, layers.Conv2DTranspose


def _down(x, filters, seeds, norm, name, conv, epsilon):
    x = conv(filters, 4, strides=2, padding="same", use_bias=False,
             kernel_initializer=_conv_init(seeds()), name=f"{name}_conv")(x)
    if norm:
        x = _instance_norm(seeds(), f"{name}_norm", epsilon)(x)
    return layers.LeakyReLU(negative_slope=0.3, name=f"{name}_lrelu")(x)


def _resize_conv(x, filters, seed, names, **options):
    """Odena et al.'s resize-convolution: nearest-neighbour x2, then a 3x3 stride-1 "same"
    convolution; ``names``: those of the two layers."""
    x = layers.UpSampling2D(2, interpolation="nearest", name=names[0])(x)
    return layers.Conv2D(filters, 3, padding="same", kernel_initializer=_conv_init(seed), name=names[1],
                         **options)(x)


def _up(x, filters, seeds, dropout, name, deconv, upsample, epsilon):
    """``dropout``: the rate, or 0 for none."""
    if upsample == "transpose":
        x = deconv(filters, 4, strides=2, padding="same", use_bias=False,
                   kernel_initializer=_conv_init(seeds()), name=f"{name}_deconv")(x)
    else:
        x = _resize_conv(x, filters, seeds(), (f"{name}_upsample", f"{name}_conv"), use_bias=False)
    x = _instance_norm(seeds(), f"{name}_norm", epsilon)(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seeds(), name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def generator_filters(image_size, base_filters=64):
    """Encoder filter counts: base * (1, 2, 4, 8, 8, ...), one per halving down to 1x1."""
    return [base_filters * min(2 ** i, 8) for i in range(_depth(image_size))]


def build_generator(image_size=256, base_filters=64, seed=None, name="generator", dropout=0.5,
                    small_map_matmul=False, inner_norm=True, upsample="transpose",
                    norm_epsilon=INSTANCE_NORM_EPSILON):
    """U-Net generator mapping (B, S, S, 3) images in [-1, 1] to the same shape in [-1, 1].

    ``dropout``: rate on the first three decoder blocks (0 leaves the layers out; for tests that
    compare exact updates). ``inner_norm``: instance norm on the innermost (1x1) encoder block
    (the report's; False leaves it off). ``upsample``: "transpose" (the report's) or "resize".
    ``norm_epsilon``: the instance norms' variance epsilon (the tutorial's 1e-3).
    """
    _check_upsample(upsample)
    seeds = _Seeds(seed)
    conv, deconv = _conv_layers(small_map_matmul)
    down_filters = generator_filters(image_size, base_filters)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    skips = []
    for i, filters in enumerate(down_filters):
        innermost = i == len(down_filters) - 1
        x = _down(x, filters, seeds, norm=i > 0 and (inner_norm or not innermost), name=f"down{i + 1}",
                  conv=conv, epsilon=norm_epsilon)
        skips.append(x)
    # Decoder mirrors the encoder except the innermost level; dropout on the first three.
    for i, (filters, skip) in enumerate(zip(reversed(down_filters[:-1]), reversed(skips[:-1]))):
        x = _up(x, filters, seeds, dropout=dropout if i < 3 else 0, name=f"up{i + 1}", deconv=deconv,
                upsample=upsample, epsilon=norm_epsilon)
        x = layers.Concatenate(name=f"up{i + 1}_skip")([x, skip])
    last = dict(activation="tanh", dtype="float32")
    if upsample == "transpose":
        outputs = layers.Conv2DTranspose(3, 4, strides=2, padding="same",
                                         kernel_initializer=_conv_init(seeds()), name="to_image", **last)(x)
    else:
        outputs = _resize_conv(x, 3, seeds(), ("to_image_upsample", "to_image"), **last)
    return keras.Model(inputs, outputs, name=name)


def reflection_pad(x, pad, name):
    """``x`` (B, H, W, C) padded by ``pad`` pixels on every side with its mirror image, the edge
    pixel not repeated (``np.pad(mode="reflect")``, PyTorch's ReflectionPad2d); ``pad`` < H, W.

    Keras has no reflection-padding layer, and a custom one would need this package to load a
    saved model, so the rows to mirror are cut out one at a time (Cropping2D) and concatenated
    in mirrored order around ``x``, then the same for the columns: pad 1 takes row 1 and row
    H - 2."""
    def mirror(x, axis, sides):
        size = x.shape[axis]

        def line(i, piece):  # row (axis 1) or column (axis 2) i of x alone
            keep = (i, size - 1 - i)
            cropping = (keep, (0, 0)) if axis == 1 else ((0, 0), keep)
            return layers.Cropping2D(cropping, name=f"{name}_{piece}")(x)

        before = [line(k, f"{sides[0]}{k}") for k in range(pad, 0, -1)]
        after = [line(size - 1 - k, f"{sides[1]}{k}") for k in range(1, pad + 1)]
        return layers.Concatenate(axis=axis, name=f"{name}_{sides[0]}_{sides[1]}")([*before, x, *after])

    return mirror(mirror(x, 1, ("top", "bottom")), 2, ("left", "right"))


def resnet_blocks(image_size):
    """Residual blocks of the ResNet generator: 9 at 256 px and above, 6 below (Zhu et al.)."""
    return 9 if image_size >= 256 else 6


def _conv_norm_relu(x, filters, kernel, seeds, name, epsilon, strides=1, padding="valid", relu=True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=_conv_init(seeds()), name=f"{name}_conv")(x)
    x = _instance_norm(seeds(), f"{name}_norm", epsilon)(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def build_resnet_generator(image_size=256, base_filters=64, seed=None, name="generator",
                           upsample="transpose", norm_epsilon=INSTANCE_NORM_EPSILON):
    """Zhu et al.'s ResNet generator mapping (B, S, S, 3) images in [-1, 1] to the same shape in
    [-1, 1]. ``upsample``: "transpose" (Zhu et al.'s) or "resize"; ``norm_epsilon`` as for the U-Net."""
    _depth(image_size)
    _check_upsample(upsample)
    seeds = _Seeds(seed)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = reflection_pad(inputs, 3, "c7s1_pad")
    x = _conv_norm_relu(x, base_filters, 7, seeds, "c7s1", norm_epsilon)
    for i in (1, 2):
        x = _conv_norm_relu(x, base_filters * 2 ** i, 3, seeds, f"down{i}", norm_epsilon, strides=2,
                            padding="same")
    for i in range(1, resnet_blocks(image_size) + 1):
        y = reflection_pad(x, 1, f"res{i}_pad1")
        y = _conv_norm_relu(y, base_filters * 4, 3, seeds, f"res{i}_1", norm_epsilon)
        y = reflection_pad(y, 1, f"res{i}_pad2")
        y = _conv_norm_relu(y, base_filters * 4, 3, seeds, f"res{i}_2", norm_epsilon, relu=False)
        x = layers.Add(name=f"res{i}_add")([x, y])
    for i in (1, 2):
        filters, block = base_filters * 2 ** (2 - i), f"up{i}"
        if upsample == "transpose":
            x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False,
                                       kernel_initializer=_conv_init(seeds()), name=f"{block}_deconv")(x)
            x = _instance_norm(seeds(), f"{block}_norm", norm_epsilon)(x)
            x = layers.ReLU(name=f"{block}_relu")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"{block}_upsample")(x)
            x = reflection_pad(x, 1, f"{block}_pad")
            x = _conv_norm_relu(x, filters, 3, seeds, block, norm_epsilon)
    x = reflection_pad(x, 3, "to_image_pad")
    outputs = layers.Conv2D(3, 7, activation="tanh", kernel_initializer=_conv_init(seeds()), dtype="float32",
                            name="to_image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_generator_from_config(config, name, seed=None, small_map_matmul=False):
    """The generator ``config`` describes (``generator``, ``image_size``, ``base_filters``,
    ``unet_inner_norm``, ``upsample``, ``instance_norm_epsilon``): what training builds, and what
    rebuilds a trained one."""
    if config.generator not in GENERATORS:
        raise MonetKerasError(f"bad parameter generator={config.generator!r}: "
                              f"expected one of {', '.join(GENERATORS)}")
    if config.generator == "resnet":
        return build_resnet_generator(config.image_size, config.base_filters, seed=seed, name=name,
                                      upsample=config.upsample, norm_epsilon=config.instance_norm_epsilon)
    return build_generator(config.image_size, config.base_filters, seed=seed, name=name,
                           small_map_matmul=small_map_matmul, inner_norm=config.unet_inner_norm,
                           upsample=config.upsample, norm_epsilon=config.instance_norm_epsilon)


def build_discriminator(image_size=256, base_filters=64, seed=None, name="discriminator",
                        small_map_matmul=False, norm_epsilon=INSTANCE_NORM_EPSILON):
    """PatchGAN discriminator: (B, S, S, 3) -> (B, S/8 - 2, S/8 - 2, 1) logits."""
    _depth(image_size)
    seeds = _Seeds(seed)
    conv = _conv_layers(small_map_matmul)[0]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _down(inputs, base_filters, seeds, norm=False, name="down1", conv=conv, epsilon=norm_epsilon)
    x = _down(x, base_filters * 2, seeds, norm=True, name="down2", conv=conv, epsilon=norm_epsilon)
    x = _down(x, base_filters * 4, seeds, norm=True, name="down3", conv=conv, epsilon=norm_epsilon)
    x = layers.ZeroPadding2D(name="pad1")(x)
    x = layers.Conv2D(base_filters * 8, 4, strides=1, use_bias=False,
                      kernel_initializer=_conv_init(seeds()), name="conv")(x)
    x = _instance_norm(seeds(), "conv_norm", norm_epsilon)(x)
    x = layers.LeakyReLU(negative_slope=0.3, name="conv_lrelu")(x)
    x = layers.ZeroPadding2D(name="pad2")(x)
    outputs = layers.Conv2D(1, 4, strides=1, kernel_initializer=_conv_init(seeds()), dtype="float32",
                            name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
