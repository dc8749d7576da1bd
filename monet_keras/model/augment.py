"""Training-only augmentation of the real batches: random horizontal flip, crop and rotation.

:class:`TrainingAugmentation` is a Keras layer that ``train_step`` calls on each real batch
with ``training=True``; with ``training=False`` (or unset) it returns its input tensor
itself. It lives outside the generators, so a saved generator contains none of it.

For each image of an NHWC batch of size ``S x S``, independently and in this order:

1. flip: mirror left-right with probability 1/2;
2. crop: take the ``c x c`` window, ``c = max(1, round(crop_fraction * S))``, whose top-left
   corner is drawn uniformly among the integer positions inside the image, and resize it back
   to ``S x S`` by the rule of ``tf.image.resize`` (bilinear, half-pixel centres, no
   antialiasing): output index ``i`` samples the crop at ``max(0, (i + 0.5) c / S - 0.5)``,
   clamped to its last pixel;
3. rotation: rotate about the image centre by an angle drawn from
   ``U(-rotation, rotation) * 2 pi`` radians, sampling bilinearly and filling with the mirror
   image across the border (``d c b a | a b c d | d c b a``). This is the transform of
   ``keras.layers.RandomRotation(factor=rotation, fill_mode="reflect")``, written with gathers
   because that layer's ``ImageProjectiveTransformV3`` op has no XLA kernel (it would fail on
   a TPU and turn off ``jit_compile="auto"`` for the whole model on a GPU).

Bilinear resampling is a convex combination of input pixels, so images in [-1, 1] stay in
[-1, 1] (up to float rounding). The maths is ``keras.ops`` (TensorFlow, also under XLA, and
JAX); the draws are per sample from a ``keras.random.SeedGenerator`` owned by the layer (its
state is a layer variable, so it is checkpointed with the model and advanced by Keras's
stateless JAX train step), distinct per replica under ``tf.distribute``
(:mod:`monet_keras.model.randomness`).
"""

import math

import keras
import numpy as np
from keras import ops

from monet_keras.errors import MonetKerasError
from monet_keras.model import randomness
from monet_keras.model.diffaugment import take_columns, take_rows


def flip_left_right(images, flips):
    """Mirror image ``b`` left-right where the boolean ``flips[b]`` is true."""
    return ops.where(flips[:, None, None, None], ops.flip(images, axis=2), images)


def resize_taps(crop_size, size):
    """``tf.image.resize``'s bilinear rule from ``crop_size`` to ``size`` pixels along one axis:
    for each output index the two crop indices it mixes and the weight of the second (numpy)."""
    source = np.maximum((np.arange(size) + 0.5) * crop_size / size - 0.5, 0)
    first = np.minimum(np.floor(source), crop_size - 1).astype(np.int32)
    second = np.minimum(first + 1, crop_size - 1)
    return first, second, (source - first).astype(np.float32)


def crop_resize(images, top, left, crop_size):
    """Crop rows ``top[b] ..`` and columns ``left[b] ..`` (``crop_size`` of each) from image
    ``b`` and resize the crops back to the input's height and width (bilinear, half-pixel
    centres, as ``tf.image.resize``). The output has the input's dtype."""
    first, second, weight = resize_taps(crop_size, images.shape[1])
    top = ops.cast(top, "int32")[:, None]
    weight = ops.cast(weight, images.dtype)[None, :, None, None]
    images = take_rows(images, top + first) * (1 - weight) + take_rows(images, top + second) * weight
    first, second, weight = resize_taps(crop_size, images.shape[2])
    left = ops.cast(left, "int32")[:, None]
    weight = ops.cast(weight, images.dtype)[None, None, :, None]
    return take_columns(images, left + first) * (1 - weight) + take_columns(images, left + second) * weight


def rotate(images, angles):
    """Rotate image ``b`` by ``angles[b]`` radians about its centre, bilinear, reflect fill.

    Output pixel ``(y, x)`` samples the input at
    ``x' = cos a (x - cx) - sin a (y - cy) + cx``, ``y' = sin a (x - cx) + cos a (y - cy) + cy``
    with ``(cy, cx) = ((H - 1) / 2, (W - 1) / 2)``: the matrix Keras's RandomRotation builds.
    """
    height, width = images.shape[1], images.shape[2]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ys, xs = np.meshgrid(np.arange(height) - cy, np.arange(width) - cx, indexing="ij")
    ys, xs = ys.astype(np.float32)[None], xs.astype(np.float32)[None]
    angles = ops.cast(angles, "float32")
    cos, sin = ops.cos(angles)[:, None, None], ops.sin(angles)[:, None, None]
    src_x = cos * xs - sin * ys + cx
    src_y = sin * xs + cos * ys + cy
    return _bilinear_reflect(images, src_y, src_x)


def _bilinear_reflect(images, y, x):
    """Sample ``images`` (B, H, W, C) at float coordinates ``y``, ``x`` (B, H', W')."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    y_floor, x_floor = ops.floor(y), ops.floor(x)
    wy = ops.cast(y - y_floor, images.dtype)[..., None]
    wx = ops.cast(x - x_floor, images.dtype)[..., None]
    y0, x0 = ops.cast(y_floor, "int32"), ops.cast(x_floor, "int32")
    # One gather from the batch seen as a list of pixels.
    pixel_list = ops.reshape(images, (-1, channels))
    offsets = ops.arange(ops.shape(images)[0], dtype="int32")[:, None, None] * (height * width)

    def pixels(rows, cols):
        return ops.take(pixel_list, offsets + _reflect(rows, height) * width + _reflect(cols, width), axis=0)

    upper = pixels(y0, x0) * (1 - wx) + pixels(y0, x0 + 1) * wx
    lower = pixels(y0 + 1, x0) * (1 - wx) + pixels(y0 + 1, x0 + 1) * wx
    return upper * (1 - wy) + lower * wy


def _reflect(index, size):
    """Map integer ``index`` into ``[0, size)`` by mirroring across the borders: -1 -> 0, size -> size - 1."""
    period = 2 * size
    folded = ops.mod(index, period)
    return ops.where(folded >= size, period - 1 - folded, folded)


@keras.saving.register_keras_serializable(package="monet_keras")
class TrainingAugmentation(keras.layers.Layer):
    """Random flip, crop-and-resize and rotation of square NHWC images, only when training.

    Args:
        image_size: side S of the (square) images it receives and returns.
        flip: mirror left-right with probability 1/2.
        crop_fraction: crop side as a fraction of S (1 = no crop), then resize back to S.
        rotation: largest rotation as a fraction of a full turn (0 = none), as
            ``keras.layers.RandomRotation(factor=rotation)``.
        seed: integer seed of the layer's ``keras.random.SeedGenerator`` (None = random).
    """

    def __init__(self, image_size, flip=True, crop_fraction=0.9, rotation=0.05, seed=None, **kwargs):
        super().__init__(autocast=False, **kwargs)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise MonetKerasError(f"bad parameter image_size={image_size!r}: expected a positive integer")
        if not 0 < crop_fraction <= 1:
            raise MonetKerasError(
                f"bad parameter aug_crop_fraction={crop_fraction!r}: expected 0 < fraction <= 1"
            )
        if not 0 <= rotation <= 0.5:
            raise MonetKerasError(
                f"bad parameter aug_rotation={rotation!r}: expected 0 <= fraction of a turn <= 0.5"
            )
        self.image_size = image_size
        self.flip = bool(flip)
        self.crop_fraction = float(crop_fraction)
        self.rotation = float(rotation)
        self.seed = seed
        self.crop_size = max(1, round(self.crop_fraction * image_size))
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        if len(images.shape) != 4 or tuple(images.shape[1:3]) != (self.image_size, self.image_size):
            raise MonetKerasError(
                f"augmentation expects NHWC batches of {self.image_size}x{self.image_size} images "
                f"(image_size), got shape {tuple(images.shape)}"
            )
        batch = ops.shape(images)[0]
        if self.flip:
            images = flip_left_right(images, randomness.uniform(batch, self.seed_generator) < 0.5)
        if self.crop_size < self.image_size:
            corners = self.image_size - self.crop_size + 1
            top = randomness.randint(batch, self.seed_generator, 0, corners)
            left = randomness.randint(batch, self.seed_generator, 0, corners)
            images = crop_resize(images, top, left, self.crop_size)
        if self.rotation > 0:
            turn = self.rotation * 2 * math.pi
            images = rotate(images, randomness.uniform(batch, self.seed_generator, -turn, turn))
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "flip": self.flip,
            "crop_fraction": self.crop_fraction,
            "rotation": self.rotation,
            "seed": self.seed,
        }


def build_augmenter(
    image_size, flip=True, crop_fraction=0.9, rotation=0.05, seed=None
) -> TrainingAugmentation:
    """A :class:`TrainingAugmentation` layer with these settings."""
    return TrainingAugmentation(
        image_size, flip=flip, crop_fraction=crop_fraction, rotation=rotation, seed=seed
    )


def from_config(config):
    """The augmentation layer an :class:`~monet_keras.config.ExperimentConfig` asks for, or
    None when ``config.augment`` is off. Uses ``image_size``, ``aug_flip``,
    ``aug_crop_fraction``, ``aug_rotation`` and ``seed``."""
    if not config.augment:
        return None
    return build_augmenter(
        config.image_size,
        flip=config.aug_flip,
        crop_fraction=config.aug_crop_fraction,
        rotation=config.aug_rotation,
        seed=config.seed,
    )
