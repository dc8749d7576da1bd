"""The report's networks (the Kaggle tutorial's architecture), sized by parameters.

- :func:`build_generator`: U-Net. Encoder blocks Conv2D(4x4, stride 2, no bias, N(0, 0.02))
  -> instance norm (not on the first block) -> LeakyReLU(0.3, Keras's default as in the
  tutorial); filters base*(1, 2, 4, 8, 8, ...) down to 1x1. Decoder blocks
  Conv2DTranspose(4x4, stride 2) -> instance norm -> Dropout(0.5) on the first three -> ReLU,
  each concatenated with the mirror skip; a last Conv2DTranspose(3) + tanh.
  Depth is log2(image_size), so 256 px gives the tutorial's 8 levels and 54,414,979 parameters.
- :func:`build_discriminator`: PatchGAN. Down base, 2*base (no norm on the first), 4*base,
  zero-pad, Conv 8*base 4x4 stride 1, norm, LeakyReLU, zero-pad, Conv 1 4x4 stride 1: a 30x30
  map of logits at 256 px (2,765,569 parameters with base 64).

Instance norm is ``keras.layers.GroupNormalization(groups=-1)`` with the tutorial's gamma
initialiser N(0, 0.02) and beta 0 (tensorflow-addons is not needed).

``small_map_matmul=True`` builds the 4x4 stride-2 convolutions from
:mod:`monet_keras.accel.smallconv`: the same layers, weights and config, computing the
convolutions on maps of at most 4x4 pixels as one matmul (faster on CPU, same results within
float round-off; :mod:`monet_keras.accel.policy` decides when). False (default) gives Keras's
own layers: the tutorial's model, and what is saved to ``.keras`` files, so they load without
this package.

Initialiser seeds: a network built with ``seed=s`` seeds its layers ``s, s + 1, ...`` (at most
:data:`SEEDS_PER_NETWORK` of them), so networks whose seeds are that far apart never share a
random stream (:func:`network_seed`).
"""

import math

import keras
from keras import layers

from monet_keras.accel import smallconv
from monet_keras.errors import MonetKerasError

_CONV_INIT_STDDEV = 0.02
_GAMMA_INIT_MEAN = 0.0  # the tutorial draws instance-norm gamma from N(0, 0.02)


def _conv_init(seed):
    return keras.initializers.RandomNormal(0.0, _CONV_INIT_STDDEV, seed=seed)


def _instance_norm(seed, name):
    return layers.GroupNormalization(
        groups=-1, epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(_GAMMA_INIT_MEAN, _CONV_INIT_STDDEV, seed=seed),
        name=name)


SEEDS_PER_NETWORK = 1000  # far more than the layers of any network here (a 256-px U-Net has 45)


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


def _conv_layers(small_map_matmul):
    """(Conv2D, Conv2DTranspose) classes for the 4x4 stride-2 blocks."""
    if small_map_matmul:
        return smallconv.Conv2D, smallconv.Conv2DTranspose
    return layers.Conv2D, layers.Conv2DTranspose


def _down(x, filters, seeds, norm, name, conv):
    x = conv(filters, 4, strides=2, padding="same", use_bias=False,
             kernel_initializer=_conv_init(seeds()), name=f"{name}_conv")(x)
    if norm:
        x = _instance_norm(seeds(), f"{name}_norm")(x)
    return layers.LeakyReLU(negative_slope=0.3, name=f"{name}_lrelu")(x)


def _up(x, filters, seeds, dropout, name, deconv):
    """``dropout``: the rate, or 0 for none."""
    x = deconv(filters, 4, strides=2, padding="same", use_bias=False,
               kernel_initializer=_conv_init(seeds()), name=f"{name}_deconv")(x)
    x = _instance_norm(seeds(), f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, seed=seeds(), name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def generator_filters(image_size, base_filters=64):
    """Encoder filter counts: base * (1, 2, 4, 8, 8, ...), one per halving down to 1x1."""
    return [base_filters * min(2 ** i, 8) for i in range(_depth(image_size))]


def build_generator(image_size=256, base_filters=64, seed=None, name="generator", dropout=0.5,
                    small_map_matmul=False):
    """U-Net generator mapping (B, S, S, 3) images in [-1, 1] to the same shape in [-1, 1].

    ``dropout``: rate on the first three decoder blocks (0 leaves the layers out; for tests that
    compare exact updates).
    """
    seeds = _Seeds(seed)
    conv, deconv = _conv_layers(small_map_matmul)
    down_filters = generator_filters(image_size, base_filters)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    skips = []
    for i, filters in enumerate(down_filters):
        x = _down(x, filters, seeds, norm=i > 0, name=f"down{i + 1}", conv=conv)
        skips.append(x)
    # Decoder mirrors the encoder except the innermost level; dropout on the first three.
    for i, (filters, skip) in enumerate(zip(reversed(down_filters[:-1]), reversed(skips[:-1]))):
        x = _up(x, filters, seeds, dropout=dropout if i < 3 else 0, name=f"up{i + 1}", deconv=deconv)
        x = layers.Concatenate(name=f"up{i + 1}_skip")([x, skip])
    outputs = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh",
                                     kernel_initializer=_conv_init(seeds()), dtype="float32",
                                     name="to_image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(image_size=256, base_filters=64, seed=None, name="discriminator",
                        small_map_matmul=False):
    """PatchGAN discriminator: (B, S, S, 3) -> (B, S/8 - 2, S/8 - 2, 1) logits."""
    _depth(image_size)
    seeds = _Seeds(seed)
    conv = _conv_layers(small_map_matmul)[0]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = _down(inputs, base_filters, seeds, norm=False, name="down1", conv=conv)
    x = _down(x, base_filters * 2, seeds, norm=True, name="down2", conv=conv)
    x = _down(x, base_filters * 4, seeds, norm=True, name="down3", conv=conv)
    x = layers.ZeroPadding2D(name="pad1")(x)
    x = layers.Conv2D(base_filters * 8, 4, strides=1, use_bias=False,
                      kernel_initializer=_conv_init(seeds()), name="conv")(x)
    x = _instance_norm(seeds(), "conv_norm")(x)
    x = layers.LeakyReLU(negative_slope=0.3, name="conv_lrelu")(x)
    x = layers.ZeroPadding2D(name="pad2")(x)
    outputs = layers.Conv2D(1, 4, strides=1, kernel_initializer=_conv_init(seeds()), dtype="float32",
                            name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
