"""Adam updates of a 256-px generator: keras.optimizers.Adam against monet_keras.accel.fused_adam.Adam.

Times ``optimizer.apply`` (compiled) for the 54,414,979 weights of the report's generator with
each optimizer, alternately in one process: median ms per update and the ratio.

Example: ``python benchmarks/bench_adam.py``.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from monet_keras.accel import fused_adam, malloc  # noqa: E402
from monet_keras.model import networks  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    malloc.tune_malloc()
    updates = {}
    for name, cls in (("keras.optimizers.Adam", keras.optimizers.Adam), ("fused_adam.Adam", fused_adam.Adam)):
        generator = networks.build_generator(args.size, 64, seed=1)
        optimizer = cls(2e-4, beta_1=0.5)
        optimizer.build(generator.trainable_variables)
        grads = [tf.random.normal(v.shape, stddev=1e-3) for v in generator.trainable_variables]
        apply = tf.function(lambda g, optimizer=optimizer, generator=generator:
                            optimizer.apply(g, generator.trainable_variables))
        updates[name] = (apply, grads, generator)
    times = {name: [] for name in updates}
    for i in range(args.repeats + 2):
        for name, (apply, grads, generator) in updates.items():
            start = time.perf_counter()
            apply(grads)
            generator.trainable_variables[-1].numpy()
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    params = updates["fused_adam.Adam"][2].count_params()
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    for name, ms in medians.items():
        print(f"{name:>22}: {ms:7.1f} ms per update of {params:,} weights")
    print(f"ratio: {medians['keras.optimizers.Adam'] / medians['fused_adam.Adam']:.2f}x")


if __name__ == "__main__":
    main()
