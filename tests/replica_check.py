"""Run as a script: one update on 1 replica vs 2 replicas (MirroredStrategy) must agree.

Printed as JSON for tests/test_distributed.py. Needs its own process, because logical CPU
devices must be configured before TensorFlow initialises.
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from monet_keras.accel import fused_adam  # noqa: E402
from monet_keras.model import networks  # noqa: E402
from monet_keras.model.cyclegan import CycleGAN  # noqa: E402

SIZE, BASE, BATCH, STEPS = 32, 8, 4, 2
PATHS = []  # trainable weight paths, in gan.trainable_weights order


def run(strategy, batches, optimizer=lambda: keras.optimizers.SGD(0.5)):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        gan = CycleGAN(
            networks.build_generator(SIZE, BASE, seed=1, dropout=0),
            networks.build_generator(SIZE, BASE, seed=2, dropout=0),
            networks.build_discriminator(SIZE, BASE, seed=3),
            networks.build_discriminator(SIZE, BASE, seed=4),
        )
        # Plain SGD by default: its update is proportional to the gradient, so a wrongly scaled
        # loss shows (Adam's first steps are nearly scale-invariant and would hide it).
        gan.compile(optimizer())  # builds the optimizer slots in this scope
    PATHS[:] = [w.path for w in gan.trainable_weights]
    before = [keras.ops.convert_to_numpy(w).copy() for w in gan.trainable_weights]
    dataset = tf.data.Dataset.from_tensor_slices(batches).batch(BATCH)
    history = gan.fit(dataset, epochs=1, verbose=0, shuffle=False)
    after = [keras.ops.convert_to_numpy(w) for w in gan.trainable_weights]
    copies = [[keras.ops.convert_to_numpy(c) for c in getattr(w.value, "values", [w.value])]
              for w in gan.trainable_weights]
    RUNS.append(max(float(np.max(np.abs(c - cs[0]))) for cs in copies for c in cs))
    return [a - b for a, b in zip(after, before)], {k: v[-1] for k, v in history.history.items()}


RUNS = []  # per run: the largest difference between replica copies of a weight


def _worst(a_deltas, b_deltas):
    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
               for a, b in zip(a_deltas, b_deltas, strict=True))


def main():
    rng = np.random.default_rng(0)
    monet = rng.uniform(-1, 1, (BATCH * STEPS, SIZE, SIZE, 3)).astype(np.float32)
    photo = rng.uniform(-1, 1, (BATCH * STEPS, SIZE, SIZE, 3)).astype(np.float32)
    one_delta, one_logs = run(tf.distribute.OneDeviceStrategy("/cpu:0"), (monet, photo))
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two_delta, two_logs = run(two, (monet, photo))
    worst = _worst(one_delta, two_delta)
    # The kit's Adam: the fused kernel on one device, Keras's update on mirrored variables; the
    # same update, and every replica's copy of a weight stays the same.
    adam = lambda: fused_adam.Adam(1e-3, beta_1=0.5)  # noqa: E731
    one_adam, _ = run(tf.distribute.OneDeviceStrategy("/cpu:0"), (monet, photo), adam)
    two_adam, _ = run(two, (monet, photo), adam)
    # The innermost 1x1 level gets no gradient at initialisation (instance norm over one pixel
    # outputs beta = 0, so it and the first decoder block are dead; the tutorial's model too).
    not_updated = sorted({p.split("/")[0] for p, a in zip(PATHS, one_delta) if not np.any(a)})
    json.dump({"replicas": two.num_replicas_in_sync, "worst_relative_update_diff": worst,
               "worst_relative_adam_update_diff": _worst(one_adam, two_adam), "replica_copy_diffs": RUNS,
               "not_updated": not_updated, "one_logs": one_logs, "two_logs": two_logs}, sys.stdout)


if __name__ == "__main__":
    main()
