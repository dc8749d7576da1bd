"""Train-step speed: the reference (straightforward) step against the fused one, in one process.

For every image size x batch x precision x XLA setting it builds the report's four networks
once, wraps them in two CycleGANs (``fused_step=False`` and ``True``) sharing networks and Adam
optimizers, and times the two compiled steps alternately (so load from other processes hits both
alike): median seconds per step over ``--steps`` steps after ``--warmup`` steps each.

Also printed:
- achieved FLOP/s of each step against a measured matmul peak of this machine. The model's
  FLOPs are counted analytically from its Conv2D / Conv2DTranspose layers (2 * multiply-adds;
  norms and activations ignored): forward = 3B images through each generator and 2B through
  each discriminator, training = 3 x forward (backward = input and weight gradients). Both
  steps are charged the same FLOPs (the work the math needs), so the ratio of their FLOP/s is
  their speed ratio;
- the input pipeline's images/s (monet_keras.data.paired_dataset over a 256-px demo data set in
  TFRecords), to compare with the images/s training consumes (2 * batch per step).

Example: ``python benchmarks/bench_train.py --sizes 256 --batches 1 --steps 10``.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from monet_keras import data, networks, runtime  # noqa: E402
from monet_keras.cyclegan import CycleGAN  # noqa: E402


def conv_flops(model, images=1):
    """2 * multiply-adds of the Conv2D / Conv2DTranspose layers of ``model`` for ``images`` images."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape  # every input pixel scatters a k x k x c_out patch
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_in * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
    return total * images


def step_flops(generator, discriminator, batch):
    """Training FLOPs of one CycleGAN step: 3 x (2 generators x 3B images + 2 discriminators x 2B)."""
    forward = 2 * conv_flops(generator, 3 * batch) + 2 * conv_flops(discriminator, 2 * batch)
    return 3 * forward


def matmul_peak(dtype, n=2048, repeats=7):
    """Best FLOP/s of an n x n x n tf.matmul in ``dtype`` (2 n^3 FLOPs), over ``repeats`` runs."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    b = tf.cast(tf.random.normal((n, n), dtype=tf.float32), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[0, 0], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _networks(size, base, precision):
    with runtime.dtype_policy(precision):
        return dict(
            monet_generator=networks.build_generator(size, base, seed=1, name="monet_generator"),
            photo_generator=networks.build_generator(size, base, seed=2, name="photo_generator"),
            monet_discriminator=networks.build_discriminator(size, base, seed=3, name="monet_discriminator"),
            photo_discriminator=networks.build_discriminator(size, base, seed=4, name="photo_discriminator"),
        )


def _optimizer(precision):
    optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer


def time_steps(size, batch, precision="float32", jit=False, steps=10, warmup=2, base=64):
    """Median s/step of the reference and fused steps, timed alternately, plus the last losses."""
    nets = _networks(size, base, precision)
    optimizers = [_optimizer(precision) for _ in range(4)]
    rng = np.random.default_rng(0)
    batch_data = tuple(tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)) for _ in range(2))
    runs = {}
    for name, fused in (("reference", False), ("fused", True)):
        gan = CycleGAN(**nets, fused_step=fused, seed=0)
        gan.compile(*optimizers)
        runs[name] = tf.function(gan.train_step, jit_compile=jit)
    times = {name: [] for name in runs}
    logs = {}
    for i in range(warmup + steps):
        for name, step in runs.items():
            start = time.perf_counter()
            logs[name] = {k: float(v) for k, v in step(batch_data).items()}
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    flops = step_flops(nets["monet_generator"], nets["monet_discriminator"], batch)
    return {name: statistics.median(t) for name, t in times.items()}, flops, logs


def pipeline_images_per_second(batch, n_batches=100, size=256):
    """Images/s (2 per pair) of paired_dataset over a fresh 256-px demo data set in TFRecords."""
    from tfrecords_tools.demo import make_demo

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "demo")
        make_demo(folder, n_monet=30, n_photos=60, size=size, seed=0)
        monet, photo = data.find_domain(folder, "monet"), data.find_domain(folder, "photo")
        dataset, _ = data.paired_dataset(monet, photo, 30, 60, "over", batch, size, seed=0, repeat=True)
        iterator = iter(dataset)
        for _ in range(5):
            next(iterator)
        start = time.perf_counter()
        for _ in range(n_batches):
            next(iterator)
        return 2 * batch * n_batches / (time.perf_counter() - start)


def _ints(text):
    return [int(x) for x in text.split(",")]


def _words(text):
    return text.split(",")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_ints, default=[128, 256])
    parser.add_argument("--batches", type=_ints, default=[1, 4])
    parser.add_argument("--precisions", type=_words, default=["float32"],
                        help="comma-separated: float32, mixed_bfloat16, mixed_float16")
    parser.add_argument("--jit", type=_words, default=["false"], help="comma-separated: false, true")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--no-peak", action="store_true", help="skip the matmul peak")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input pipeline")
    args = parser.parse_args(argv)

    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: {devices}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    peaks = {}
    if not args.no_peak:
        for dtype in ("float32", "bfloat16") + (("float16",) if "mixed_float16" in args.precisions else ()):
            peaks[dtype] = matmul_peak(dtype)
            print(f"matmul peak {dtype}: {peaks[dtype] / 1e9:.1f} GFLOP/s")
    header = (f"{'size':>4} {'batch':>5} {'precision':>14} {'xla':>5} {'ref s/step':>10} {'fused s/step':>12} "
              f"{'ratio':>6} {'GFLOP/step':>10} {'ref GFLOP/s':>11} {'fused GFLOP/s':>13} {'of peak':>7} "
              f"{'train img/s':>11}")
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            for precision in args.precisions:
                for jit in args.jit:
                    times, flops, logs = time_steps(size, batch, precision, jit == "true", args.steps, args.warmup,
                                                    args.base_filters)
                    finite = all(np.isfinite(v) for run in logs.values() for v in run.values())
                    peak = peaks.get({"float32": "float32", "mixed_bfloat16": "bfloat16",
                                      "mixed_float16": "float16"}[precision])
                    of_peak = f"{flops / times['fused'] / peak:.0%}" if peak else "-"
                    row = (f"{size:>4} {batch:>5} {precision:>14} {jit:>5} {times['reference']:>10.3f} "
                           f"{times['fused']:>12.3f} {times['reference'] / times['fused']:>6.2f} {flops / 1e9:>10.1f} "
                           f"{flops / times['reference'] / 1e9:>11.1f} {flops / times['fused'] / 1e9:>13.1f} "
                           f"{of_peak:>7} "
                           f"{2 * batch / times['fused']:>11.2f}" + ("" if finite else "  NON-FINITE LOSSES"))
                    rows.append(row)
                    print(row, flush=True)
    if not args.no_pipeline:
        for batch in args.batches:
            print(f"input pipeline (paired_dataset, 256-px TFRecords, batch {batch}): "
                  f"{pipeline_images_per_second(batch):.0f} images/s")
    print()
    print(header)
    print("\n".join(rows))
    print("of peak: fused FLOP/s over the matmul peak of the step's compute dtype")


if __name__ == "__main__":
    main()
