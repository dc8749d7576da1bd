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

Randomness is stateless (``tf.random.stateless_*``) from a seed resolved by
:func:`stateless_seed`, so the ops run inside ``tf.function``, under XLA and in every replica
of a ``tf.distribute`` strategy; shapes are static and nothing is drawn in Python.
"""

import keras
import tensorflow as tf

from monet_keras.errors import MonetKerasError

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


def stateless_seed(seed=None) -> tf.Tensor:
    """A ``(2,)`` int32 seed for ``tf.random.stateless_*`` ops, distinct per replica.

    ``seed`` may be a ``keras.random.SeedGenerator`` (its next seed: a new one every call,
    also inside ``tf.function``), a ``(2,)`` integer tensor (used as given), a Python int
    (``[seed, 0]``), or None (drawn from TensorFlow's global stateful generator, not
    reproducible). Inside a ``tf.distribute`` replica context the replica's id is folded in,
    so replicas that share a seed still draw different values; on one device replica 0 is
    folded in.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif seed is None:
        seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    elif isinstance(seed, int):
        seed = tf.constant([seed, 0], dtype=tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        seed = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max), tf.int32)
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int32))


def brightness(x, seed):
    """``x + b``, ``b ~ U(-0.5, 0.5)`` per sample."""
    b = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed, -0.5, 0.5)
    return x + tf.cast(b, x.dtype)


def saturation(x, seed):
    """``(x - m) * s + m``, ``m`` = mean over channels of each pixel, ``s ~ U(0, 2)`` per sample."""
    s = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed, 0.0, 2.0)
    mean = _mean(x, axis=3)
    return (x - mean) * tf.cast(s, x.dtype) + mean


def contrast(x, seed):
    """``(x - m) * c + m``, ``m`` = mean of each image, ``c ~ U(0.5, 1.5)`` per sample."""
    c = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed, 0.5, 1.5)
    mean = _mean(x, axis=[1, 2, 3])
    return (x - mean) * tf.cast(c, x.dtype) + mean


def translation_shifts(batch_size, height, width, seed, ratio=TRANSLATION_RATIO):
    """Per-sample integer shifts ``(dy, dx)``, each of shape ``(batch_size,)``, uniform in
    ``[-int(height * ratio), int(height * ratio)]`` and likewise for width."""
    max_dy, max_dx = int(height * ratio), int(width * ratio)
    dy = tf.random.stateless_uniform([batch_size], seed, -max_dy, max_dy + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform(
        [batch_size], tf.random.experimental.stateless_fold_in(seed, 1), -max_dx, max_dx + 1, dtype=tf.int32
    )
    return dy, dx


def shift(x, dy, dx):
    """``out[b, i, j] = x[b, i + dy[b], j + dx[b]]``, zero where that index is outside the image.

    A gather of clipped indices times a validity mask: static shapes, exact values, and its
    gradient is a scatter of the output gradient back to the source pixels.
    """
    height, width = x.shape[1], x.shape[2]
    rows = tf.range(height)[None, :] + dy[:, None]  # (B, H)
    cols = tf.range(width)[None, :] + dx[:, None]  # (B, W)
    x = tf.gather(x, tf.clip_by_value(rows, 0, height - 1), axis=1, batch_dims=1)
    x = tf.gather(x, tf.clip_by_value(cols, 0, width - 1), axis=2, batch_dims=1)
    row_ok = tf.cast((rows >= 0) & (rows < height), x.dtype)
    col_ok = tf.cast((cols >= 0) & (cols < width), x.dtype)
    return x * row_ok[:, :, None, None] * col_ok[:, None, :, None]


def translation(x, seed):
    """Shift each image by up to 1/8 of its side (integer pixels per axis), zero padded."""
    _check_static(x)
    dy, dx = translation_shifts(tf.shape(x)[0], x.shape[1], x.shape[2], seed)
    return shift(x, dy, dx)


def cutout_corners(batch_size, height, width, seed, ratio=CUTOUT_RATIO):
    """Per-sample top-left corners ``(y0, x0)`` of the cutout rectangle, and its size.

    Returns ``(y0, x0, cut_h, cut_w)``: ``y0`` and ``x0`` have shape ``(batch_size,)`` and may
    be negative or run past the image (the rectangle is clipped by :func:`cut`).
    """
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = tf.random.stateless_uniform([batch_size], seed, 0, height + 1 - cut_h % 2, dtype=tf.int32)
    x_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    cx = tf.random.stateless_uniform([batch_size], x_seed, 0, width + 1 - cut_w % 2, dtype=tf.int32)
    return cy - cut_h // 2, cx - cut_w // 2, cut_h, cut_w


def cut(x, y0, x0, cut_h, cut_w):
    """Zero rows ``y0[b] .. y0[b] + cut_h - 1`` x columns ``x0[b] .. x0[b] + cut_w - 1`` of
    image ``b`` (the part inside the image), by multiplying with a 0/1 mask."""
    height, width = x.shape[1], x.shape[2]
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < y0[:, None] + cut_h)  # (B, H)
    in_cols = (cols >= x0[:, None]) & (cols < x0[:, None] + cut_w)  # (B, W)
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return x * tf.cast(~inside, x.dtype)[:, :, :, None]


def cutout(x, seed):
    """Zero a rectangle of half the height and half the width at a random per-sample position."""
    _check_static(x)
    y0, x0, cut_h, cut_w = cutout_corners(tf.shape(x)[0], x.shape[1], x.shape[2], seed)
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

    Differentiable w.r.t. ``x``; output shape and dtype equal the input's. ``seed`` is
    resolved once by :func:`stateless_seed` (pass a ``keras.random.SeedGenerator`` to get new
    draws on every call) and each op gets its own seed folded from it. The empty policy
    returns ``x`` itself.
    """
    names = parse_policy(policy)
    if not names:
        return x
    x = tf.convert_to_tensor(x)
    base = stateless_seed(seed)
    for index, name in enumerate(names):
        x = _FUNCTIONS[name](x, tf.random.experimental.stateless_fold_in(base, index))
    return x


def _mean(x, axis):
    """Mean over ``axis`` (kept) accumulated in float32, returned in ``x``'s dtype."""
    return tf.cast(tf.reduce_mean(tf.cast(x, tf.float32), axis=axis, keepdims=True), x.dtype)


def _check_static(x):
    if x.shape.rank != 4 or x.shape[1] is None or x.shape[2] is None:
        raise MonetKerasError(
            f"DiffAugment needs NHWC images with static height and width, got shape {x.shape}"
        )
