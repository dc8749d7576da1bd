"""A colour transform with a known answer, at the setting of the team's kit-vs-tutorial check.

Domain A: smooth random colour fields (bilinear upsampling of a 4x4 grid) with reddish channel
ranges; domain B: other fields of the same kind with the channels rotated (R,G,B -> G,B,R), so
the rotation T is the one channel mapping between them (as tests/test_learning.py, at 64 px).
The report's CycleGAN (U-Net and PatchGAN at 64 px, base 64, the report's losses and Adam 2e-4,
beta_1 0.5) trains unpaired for 500 steps at batch 1, then

    error ratio = mean |G(a) - T(a)| / mean |a - T(a)|   over 64 held-out fields a

(0 = the transform learned exactly, 1 = no better than copying). One line per instance-norm
epsilon and seed.

    python benchmarks/bench_colour_task.py                     # epsilons 1e-5 and 1e-3, seeds 0-1
    python benchmarks/bench_colour_task.py --epsilons 1e-3 --seeds 3
"""

import argparse
import sys

import keras
import numpy as np
import tensorflow as tf

from monet_keras.model import networks
from monet_keras.model.cyclegan import CycleGAN

SIZE, BASE, STEPS = 64, 64, 500


def fields(n, seed):
    rng = np.random.default_rng(seed)
    low, high = np.array([0.1, -0.4, -0.9]), np.array([0.9, 0.4, -0.1])
    coarse = rng.uniform(low, high, (n, 4, 4, 3)).astype(np.float32)
    return tf.image.resize(coarse, (SIZE, SIZE), method="bilinear").numpy()


def rotate(images):
    return images[..., [1, 2, 0]]


def error_ratio(epsilon, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    domain_a, domain_b, test = fields(STEPS, 10 + seed), rotate(fields(STEPS, 20 + seed)), fields(64, 3)
    first = seed * 10

    def generator(index):
        return networks.build_generator(SIZE, BASE, seed=first + index, norm_epsilon=epsilon)

    def discriminator(index):
        return networks.build_discriminator(SIZE, BASE, seed=first + index, norm_epsilon=epsilon)

    gan = CycleGAN(generator(1), generator(2), discriminator(3), discriminator(4), seed=seed)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5))
    gan.fit(tf.data.Dataset.from_tensor_slices((domain_b, domain_a)).batch(1), epochs=1, verbose=0,
            shuffle=False)
    translated = gan.monet_generator(test, training=False).numpy()
    return float(np.mean(np.abs(translated - rotate(test))) / np.mean(np.abs(test - rotate(test))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", default="1e-5,1e-3", help="instance-norm epsilons, comma-separated")
    parser.add_argument("--seeds", type=int, default=2, help="runs per epsilon, seeds 0..N-1")
    args = parser.parse_args(argv)
    print(f"# bench_colour_task: {SIZE} px, base {BASE}, batch 1, {STEPS} steps; keras {keras.__version__}")
    for seed in range(args.seeds):
        for epsilon in (float(e) for e in args.epsilons.split(",")):
            ratio = error_ratio(epsilon, seed)
            print(f"epsilon {epsilon:g} seed {seed}: error ratio {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
