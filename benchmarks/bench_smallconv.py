"""Small-map convolutions: TF's conv kernels against monet_keras.accel.smallconv's matmuls.

Forward + backward (input and kernel gradients) of one 4x4 stride-2 'same' convolution or
transposed convolution, for the U-Net's inner shapes at 256 px, at several batch sizes: median
ms of each, alternately timed in one process, and the ratio. This is what
smallconv.MAX_CONV_OUTPUT_PIXELS and MAX_TRANSPOSED_INPUT_PIXELS were set from.

Example: ``python benchmarks/bench_smallconv.py --batches 1,4``.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from monet_keras.accel import malloc, smallconv  # noqa: E402

tf.get_logger().setLevel("ERROR")  # one tf.function per shape is deliberate; no retracing warnings

# (transposed?, input map side, input channels, output channels): the 256-px U-Net's inner layers.
SHAPES = [(True, 1, 512, 512), (True, 2, 1024, 512), (True, 4, 1024, 512), (True, 8, 1024, 512),
          (False, 2, 512, 512), (False, 4, 512, 512), (False, 8, 512, 512), (False, 16, 512, 512)]
# The outer layers (``--shapes all``): the U-Net's and the PatchGAN's larger maps, left to TF.
OUTER_SHAPES = [(True, 16, 1024, 256), (True, 32, 512, 128), (True, 64, 256, 64), (True, 128, 128, 3),
                (False, 32, 256, 512), (False, 64, 128, 256), (False, 128, 64, 128), (False, 256, 3, 64)]


def _tf_conv_transpose(x, kernel):
    batch, height, width, _ = x.shape
    return tf.nn.conv2d_transpose(x, kernel, (batch, 2 * height, 2 * width, kernel.shape[2]), 2, "SAME")


def _tf_conv(x, kernel):
    return tf.nn.conv2d(x, kernel, 2, "SAME")


def _forward_backward(conv, kernel):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = conv(x, kernel)
            loss = tf.reduce_sum(y * y)
        return [loss] + tape.gradient(loss, [x, kernel])
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--malloc", choices=["tuned", "default"], default="tuned")
    parser.add_argument("--shapes", choices=["inner", "all"], default="inner",
                        help="inner: the U-Net's small maps (default); all: also its larger ones")
    args = parser.parse_args(argv)
    if args.malloc == "tuned":
        malloc.tune_malloc()
    rng = np.random.default_rng(0)
    print(f"{'kind':>10} {'batch':>5} {'input':>12} {'c_out':>5} {'TF ms':>8} {'matmul ms':>9} "
          f"{'ratio':>6}  path used")
    for batch in (int(b) for b in args.batches.split(",")):
        for transposed, side, c_in, c_out in SHAPES + (OUTER_SHAPES if args.shapes == "all" else []):
            x = tf.constant(rng.standard_normal((batch, side, side, c_in)).astype(np.float32))
            shape = (4, 4, c_out, c_in) if transposed else (4, 4, c_in, c_out)
            kernel = tf.Variable(0.02 * rng.standard_normal(shape).astype(np.float32))
            steps = [_forward_backward(conv, kernel) for conv in
                     ((_tf_conv_transpose, smallconv.conv_transpose_4x4_s2) if transposed
                      else (_tf_conv, smallconv.conv_4x4_s2))]
            times = [[], []]
            for i in range(args.repeats + 2):
                for step, t in zip(steps, times):
                    start = time.perf_counter()
                    step(x)[0].numpy()
                    if i >= 2:
                        t.append(time.perf_counter() - start)
            tf_ms, mm_ms = (statistics.median(t) * 1e3 for t in times)
            pixels = side * side if transposed else (-(-side // 2)) ** 2
            used = pixels <= (smallconv.MAX_TRANSPOSED_INPUT_PIXELS if transposed
                              else smallconv.MAX_CONV_OUTPUT_PIXELS)
            print(f"{'transposed' if transposed else 'conv':>10} {batch:>5} {f'{side}x{side}x{c_in}':>12} "
                  f"{c_out:>5} {tf_ms:>8.2f} {mm_ms:>9.2f} {tf_ms / mm_ms:>6.2f}  "
                  f"{'matmul' if used else 'TF'}", flush=True)


if __name__ == "__main__":
    main()
