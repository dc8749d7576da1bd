"""4x4 stride-2 'same' convolutions on small feature maps, computed as one matrix product.

The U-Net's inner levels run 4x4, stride-2 convolutions between maps of at most 16x16 pixels
and 512-1024 channels: little arithmetic on large kernels (up to 4x4x1024x512 = 32 MB), which
TensorFlow's CPU convolution kernels run far below the CPU's peak (benchmarks/README.md); written
as one matmul against the kernel, plus cheap slicing of the small maps, they run faster, forward
and backward. The result is the same convolution (same weights, same sums in another
order: float round-off only; tests/test_smallconv.py checks it against numpy).

- :func:`conv_4x4_s2`: ``Conv2D(k, 4, strides=2, padding="same")``. im2col: the 4x4 patches of
  the zero-padded input (``tf.image.extract_patches``, in the kernel's (row, column, channel)
  order, so the kernel is only reshaped, never transposed) times the kernel.
- :func:`conv_transpose_4x4_s2`: ``Conv2DTranspose(k, 4, strides=2, padding="same")``. Every
  input pixel times the kernel gives a 4x4 patch (one matmul), and the patches are added where
  they overlap: output row ``2m`` gets taps 1 of input row ``m`` and 3 of row ``m - 1``, row
  ``2m + 1`` taps 2 of row ``m`` and 0 of row ``m + 1`` (TF's 'same' pads the equivalent
  convolution by one pixel before), and the same for columns.

:class:`Conv2D` and :class:`Conv2DTranspose` are the Keras layers with the same weights and
config; they take the matmul path when the smaller map (the output of a convolution, the input of
a transposed one) is small enough (:data:`MAX_CONV_OUTPUT_PIXELS`,
:data:`MAX_TRANSPOSED_INPUT_PIXELS`), and Keras's own kernel otherwise (larger maps are
compute-bound, and TF's kernels use the CPU well there).
"""

import keras
import tensorflow as tf

# Set from benchmarks/bench_smallconv.py (forward + backward, batch 1-8) and whole 256-px steps,
# on AVX-512 and with oneDNN held to AVX2 (benchmarks/README.md): convolutions to maps of up to
# 8x8 pixels are faster as a matmul on both; larger ones and transposed convolutions from 8x8
# maps are not, or not at every batch size.
MAX_CONV_OUTPUT_PIXELS = 64
MAX_TRANSPOSED_INPUT_PIXELS = 16


def _same_padding(size):
    """(before, after) zero padding of TF's 'same' stride-2, 4-tap convolution of ``size`` pixels."""
    out = -(-size // 2)
    total = max(2 * (out - 1) + 4 - size, 0)
    return total // 2, total - total // 2


def conv_4x4_s2(x, kernel):
    """``tf.nn.conv2d(x, kernel, 2, "SAME")`` for a (4, 4, c_in, c_out) kernel, as one matmul."""
    _, height, width, c_in = x.shape
    c_out = kernel.shape[-1]
    out_h, out_w = -(-height // 2), -(-width // 2)
    x = tf.pad(x, [[0, 0], _same_padding(height), _same_padding(width), [0, 0]])
    # One op (16 strided slices and a concat were as fast, with twice the tracing time).
    patches = tf.image.extract_patches(x, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
    out = tf.matmul(tf.reshape(patches, (-1, 16 * c_in)), tf.reshape(kernel, (16 * c_in, c_out)))
    return tf.reshape(out, (-1, out_h, out_w, c_out))


def _overlap_add(patches, axis, tap_axis):
    """Add 4-tap patches along spatial ``axis`` into 2x as many pixels.

    ``patches[..., m, ..., tap, ...]`` (``m`` on ``axis``, ``tap`` on ``tap_axis``) is input
    pixel m's contribution to output pixel 2m - 1 + tap. Returns the outputs with the tap axis
    gone and a new parity axis (output 2m + parity) after ``axis``.
    """
    size = patches.shape[axis]
    pad = [[0, 0]] * len(patches.shape)
    pad[axis] = [1, 1]
    padded = tf.pad(patches, pad)

    def rows(start, tap):  # padded rows start..start+size-1, tap ``tap``
        index = [slice(None)] * len(patches.shape)
        index[axis] = slice(start, start + size)
        index[tap_axis] = tap
        return padded[tuple(index)]

    even = rows(1, 1) + rows(0, 3)  # output 2m: tap 1 of row m, tap 3 of row m - 1
    odd = rows(1, 2) + rows(2, 0)  # output 2m + 1: tap 2 of row m, tap 0 of row m + 1
    return tf.stack([even, odd], axis=axis + 1)


def conv_transpose_4x4_s2(x, kernel):
    """``tf.nn.conv2d_transpose`` (stride 2, "SAME", output 2H x 2W) for a (4, 4, c_out, c_in)
    kernel, as one matmul and an overlap-add."""
    _, height, width, c_in = x.shape
    c_out = kernel.shape[2]
    # kernel (16 c_out, c_in) @ x^T: measured 1.5-4x faster on CPU than x @ kernel^T at 1-64 rows.
    taps = tf.matmul(tf.reshape(kernel, (16 * c_out, c_in)), tf.transpose(tf.reshape(x, (-1, c_in))))
    patches = tf.reshape(tf.transpose(taps), (-1, height, width, 4, 4, c_out))
    rows = _overlap_add(patches, axis=1, tap_axis=3)  # (B, H, 2, W, 4, c_out)
    pixels = _overlap_add(rows, axis=3, tap_axis=4)  # (B, H, 2, W, 2, c_out)
    return tf.reshape(pixels, (-1, 2 * height, 2 * width, c_out))


def _matmul_shape(layer, spatial, max_pixels):
    """Whether ``layer`` should take the matmul path: a 4x4 stride-2 'same' channels-last
    convolution whose smaller map has a static ``spatial`` size of at most ``max_pixels``."""
    return (tuple(layer.kernel_size) == (4, 4) and tuple(layer.strides) == (2, 2)
            and layer.padding == "same" and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1) and getattr(layer, "groups", 1) == 1
            and None not in spatial and spatial[0] * spatial[1] <= max_pixels)


@keras.saving.register_keras_serializable(package="monet_keras")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` that computes 4x4 stride-2 'same' convolutions with outputs of at
    most :data:`MAX_CONV_OUTPUT_PIXELS` pixels by :func:`conv_4x4_s2`."""

    def convolution_op(self, inputs, kernel):
        _, height, width, _ = inputs.shape
        output = tuple(None if size is None else -(-size // 2) for size in (height, width))
        if not _matmul_shape(self, output, MAX_CONV_OUTPUT_PIXELS):
            return super().convolution_op(inputs, kernel)
        return conv_4x4_s2(inputs, kernel)


@keras.saving.register_keras_serializable(package="monet_keras")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` that computes 4x4 stride-2 'same' transposed convolutions
    of inputs of at most :data:`MAX_TRANSPOSED_INPUT_PIXELS` pixels by :func:`conv_transpose_4x4_s2`."""

    def call(self, inputs):
        if self.output_padding is not None or not _matmul_shape(self, inputs.shape[1:3],
                                                                 MAX_TRANSPOSED_INPUT_PIXELS):
            return super().call(inputs)
        # Keras's call with the convolution replaced (Conv2DTranspose has no convolution_op hook).
        outputs = conv_transpose_4x4_s2(inputs, self.kernel)
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)
