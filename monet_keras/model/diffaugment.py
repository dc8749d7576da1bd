"""DiffAugment: differentiable augmentations applied to every discriminator input.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
(https://arxiv.org/abs/2006.10738). Each op draws its magnitudes independently for every
sample of the batch; images are NHWC in [-1, 1] (the paper's convention too):

- ``brightness``: ``x + b`` with ``b ~ U(-0.5, 0.5)``;
- ``saturation``: ``(x - m) * s + m`` with ``m`` the mean over channels of each pixel and
  ``s ~ U(0, 2)``;
- ``contrast``: ``(x - m) * c + m`` with ``m`` the mean over all pixels and channels of the
  image and ``c ~ U(0.5, 1.5)``;
- ``translation``: ``out[i, j] = x[i + dy, j + dx]``, zero where ``i + dy`` or ``j + dx``
  falls outside the image; ``dy`` and ``dx`` are integers drawn uniformly from
  ``[-H // 8, H // 8]`` and ``[-W // 8, W // 8]``;
- ``cutout``: zero a ``H // 2`` x ``W // 2`` rectangle whose centre (row ``cy``, column
  ``cx``) is drawn uniformly from ``[0, H]`` x ``[0, W]`` (``[0, H - 1]`` where ``H // 2``
  is odd, likewise for W), covering rows ``cy - (H // 2) // 2`` to
  ``cy - (H // 2) // 2 + H // 2 - 1``; the part outside the image is dropped, so near a
  border fewer pixels are zeroed (as in the paper's reference code).

A policy is a comma-separated list of op names applied left to right; ``color`` stands for
``brightness,saturation,contrast``; the empty policy is the identity.

Each op is a draw (:mod:`monet_keras.model.randomness`: per sample, from a seeded
``keras.random.SeedGenerator``, right under ``tf.distribute`` and on JAX) followed by a function
of the drawn magnitudes (``shift_brightness``, ``scale_saturation``, ``scale_contrast``,
``shift``, ``cut``). Everything is ``keras.ops``: the ops run on TensorFlow (also inside
``tf.function`` and under XLA) and on JAX (inside a jitted stateless train step); shapes are
static and nothing is drawn in Python.
"""

from keras import ops

from monet_keras.errors import MonetKerasError
from monet_keras.model import randomness

OPS = ("brightness", "saturation", "contrast", "translation", "cutout")
GROUPS = {"color": ("brightness", "saturation", "contrast")}

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def parse_policy(policy: str) -> tuple:
    """The op names of ``policy``, in order, with ``color`` expanded.

    Names are separated by commas; surrounding spaces and empty items are ignored, so ``""``
    gives ``()``. An unknown name raises :class:`MonetKerasError` naming it.
    """
    if not isinstance(policy, str):
        raise MonetKerasError(f"bad parameter diffaugment={policy!r}: expected a comma-separated string")
    names = []
    for item in policy.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if name in GROUPS:
            names.extend(GROUPS[name])
        elif name in OPS:
            names.append(name)
        else:
            known = ", ".join(tuple(GROUPS) + OPS)
            raise MonetKerasError(
                f"bad parameter diffaugment={policy!r}: unknown DiffAugment op {name!r}; known: {known}"
            )
    return tuple(names)


def shift_brightness(x, b):
    """``x + b[i]`` for sample ``i``."""
    return x + _per_sample(b, x.dtype)


def scale_saturation(x, s):
    """``(x - m) * s[i] + m`` for sample ``i``, ``m`` the mean over channels of each pixel."""
    mean = _mean(x, axis=3)
    return (x - mean) * _per_sample(s, x.dtype) + mean


def scale_contrast(x, c):
    """``(x - m) * c[i] + m`` for sample ``i``, ``m`` the mean of the image."""
    mean = _mean(x, axis=(1, 2, 3))
    return (x - mean) * _per_sample(c, x.dtype) + mean


def brightness(x, seed):
    """``x + b``, ``b ~ U(-0.5, 0.5)`` per sample."""
    return shift_brightness(x, randomness.uniform(ops.shape(x)[0], seed, -0.5, 0.5))


def saturation(x, seed):
    """``(x - m) * s + m``, ``m`` = mean over channels of each pixel, ``s ~ U(0, 2)`` per sample."""
    return scale_saturation(x, randomness.uniform(ops.shape(x)[0], seed, 0.0, 2.0))


def contrast(x, seed):
    """``(x - m) * c + m``, ``m`` = mean of each image, ``c ~ U(0.5, 1.5)`` per sample."""
    return scale_contrast(x, randomness.uniform(ops.shape(x)[0], seed, 0.5, 1.5))


def translation_shifts(batch_size, height, width, seed, ratio=TRANSLATION_RATIO):
    """Per-sample integer shifts ``(dy, dx)``, each of shape ``(batch_size,)``, uniform in
    ``[-int(height * ratio), int(height * ratio)]`` and likewise for width."""
    max_dy, max_dx = int(height * ratio), int(width * ratio)
    dy = randomness.randint(batch_size, seed, -max_dy, max_dy + 1)
    dx = randomness.randint(batch_size, seed, -max_dx, max_dx + 1)
    return dy, dx


def take_rows(images, rows):
    """``out[b, r] = images[b, rows[b, r]]``: per-sample rows (int ``(B, R)``) of an NHWC batch.

    One gather from the batch seen as a stack of rows; its gradient scatters back to the rows.
    """
    height = images.shape[1]
    stacked = ops.reshape(images, (-1, *images.shape[2:]))
    offsets = ops.arange(ops.shape(images)[0], dtype="int32")[:, None] * height
    return ops.take(stacked, ops.cast(rows, "int32") + offsets, axis=0)


def take_columns(images, cols):
    """``out[b, :, c] = images[b, :, cols[b, c]]``: per-sample columns (int ``(B, C')``)."""
    transposed = ops.transpose(images, (0, 2, 1, 3))
    return ops.transpose(take_rows(transposed, cols), (0, 2, 1, 3))


def shift(x, dy, dx):
    """``out[b, i, j] = x[b, i + dy[b], j + dx[b]]``, zero where that index is outside the image.

    A gather of clipped indices times a validity mask: static shapes, exact values, and its
    gradient is a scatter of the output gradient back to the source pixels.
    """
    height, width = x.shape[1], x.shape[2]
    rows = ops.arange(height, dtype="int32")[None, :] + ops.cast(dy, "int32")[:, None]  # (B, H)
    cols = ops.arange(width, dtype="int32")[None, :] + ops.cast(dx, "int32")[:, None]  # (B, W)
    x = take_rows(x, ops.clip(rows, 0, height - 1))
    x = take_columns(x, ops.clip(cols, 0, width - 1))
    row_ok = ops.cast((rows >= 0) & (rows < height), x.dtype)
    col_ok = ops.cast((cols >= 0) & (cols < width), x.dtype)
    return x * row_ok[:, :, None, None] * col_ok[:, None, :, None]


def translation(x, seed):
    """Shift each image by up to 1/8 of its side (integer pixels per axis), zero padded."""
    _check_static(x)
    dy, dx = translation_shifts(ops.shape(x)[0], x.shape[1], x.shape[2], seed)
    return shift(x, dy, dx)


def cutout_corners(batch_size, height, width, seed, ratio=CUTOUT_RATIO):
    """Per-sample top-left corners ``(y0, x0)`` of the cutout rectangle, and its size.

    Returns ``(y0, x0, cut_h, cut_w)``: ``y0`` and ``x0`` have shape ``(batch_size,)`` and may
    be negative or run past the image (the rectangle is clipped by :func:`cut`).
    """
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = randomness.randint(batch_size, seed, 0, height + 1 - cut_h % 2)
    cx = randomness.randint(batch_size, seed, 0, width + 1 - cut_w % 2)
    return cy - cut_h // 2, cx - cut_w // 2, cut_h, cut_w


def cut(x, y0, x0, cut_h, cut_w):
    """Zero rows ``y0[b] .. y0[b] + cut_h - 1`` x columns ``x0[b] .. x0[b] + cut_w - 1`` of
    image ``b`` (the part inside the image), by multiplying with a 0/1 mask."""
    height, width = x.shape[1], x.shape[2]
    y0, x0 = ops.cast(y0, "int32")[:, None], ops.cast(x0, "int32")[:, None]
    rows = ops.arange(height, dtype="int32")[None, :]
    cols = ops.arange(width, dtype="int32")[None, :]
    in_rows = (rows >= y0) & (rows < y0 + cut_h)  # (B, H)
    in_cols = (cols >= x0) & (cols < x0 + cut_w)  # (B, W)
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return x * ops.cast(ops.logical_not(inside), x.dtype)[:, :, :, None]


def cutout(x, seed):
    """Zero a rectangle of half the height and half the width at a random per-sample position."""
    _check_static(x)
    y0, x0, cut_h, cut_w = cutout_corners(ops.shape(x)[0], x.shape[1], x.shape[2], seed)
    return cut(x, y0, x0, cut_h, cut_w)


_FUNCTIONS = {
    "brightness": brightness,
    "saturation": saturation,
    "contrast": contrast,
    "translation": translation,
    "cutout": cutout,
}


def diff_augment(x, policy="color,translation,cutout", seed=None):
    """Apply the ops of ``policy`` (see :func:`parse_policy`) to the NHWC batch ``x``.

    Differentiable w.r.t. ``x``; output shape and dtype equal the input's. ``seed``: a
    ``keras.random.SeedGenerator`` (new draws on every call, the train step's way), an int (the
    same draws for the same int) or None (random); see :func:`randomness.seed_generator`. The
    empty policy returns ``x`` itself.
    """
    names = parse_policy(policy)
    if not names:
        return x
    x = ops.convert_to_tensor(x)
    generator = randomness.seed_generator(seed)
    for name in names:
        x = _FUNCTIONS[name](x, generator)
    return x


def _per_sample(values, dtype):
    """``(B,)`` magnitudes as ``(B, 1, 1, 1)`` in ``dtype``, to broadcast over an NHWC batch."""
    return ops.cast(values, dtype)[:, None, None, None]


def _mean(x, axis):
    """Mean over ``axis`` (kept) accumulated in float32, returned in ``x``'s dtype."""
    return ops.cast(ops.mean(ops.cast(x, "float32"), axis=axis, keepdims=True), x.dtype)


def _check_static(x):
    if len(x.shape) != 4 or x.shape[1] is None or x.shape[2] is None:
        raise MonetKerasError(
            f"DiffAugment needs NHWC images with static height and width, got shape {tuple(x.shape)}"
        )
