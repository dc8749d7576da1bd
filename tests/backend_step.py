"""Run as a script: one CycleGAN update through ``fit`` on the Keras backend of KERAS_BACKEND.

    python backend_step.py WEIGHTS OUT [--devices N] [--batch B] [--optimizer sgd|adam] [--eager]
                                       [--model cyclegan|cut]

Builds the model's networks (32 px, base 8, dropout off; CUT compares every position of its
feature maps, so no patch is sampled), loads their weights from WEIGHTS (an
``.npz`` keyed like the checkpoints; written from this run's own networks if it does not exist
yet, so a second run on another backend starts from the same weights), trains one step on a
fixed batch of B image pairs spread over N devices (JAX: DataParallel; TensorFlow: 1 device),
and writes the losses and each trainable weight's change to OUT. tests/test_backends.py
compares runs. Its own process, because the backend and JAX's device count are fixed when
Keras and JAX start.
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

from monet_keras.accel import runtime
from monet_keras.model import networks
from monet_keras.model.cut import CUT, DEFAULT_NCE_LAYERS
from monet_keras.model.cyclegan import CycleGAN
from monet_keras.train import checkpoints

SIZE, BASE, LR = 32, 8, 0.5


def spread_weights(network, seed):
    """Weights of a partly trained network (as tests/test_fast_step.py: at the initialisation's
    N(0, 0.02) the gradients are too ill-conditioned to compare two float orders)."""
    rng = np.random.default_rng(seed)
    for variable in network.weights:
        shape, name = tuple(variable.shape), variable.path
        if name.endswith("gamma"):
            value = 1 + 0.1 * rng.standard_normal(shape)
        elif len(shape) == 4:
            fan_in = np.prod(shape[:2]) * shape[-1 if "deconv" in name else 2]
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            value = 0.1 * rng.standard_normal(shape)
        variable.assign(value.astype(np.float32))


def build_model(model):
    monet_generator = networks.build_generator(SIZE, BASE, seed=1, dropout=0, name="monet_generator")
    monet_discriminator = networks.build_discriminator(SIZE, BASE, seed=3, name="monet_discriminator")
    if model == "cut":  # every position of the largest map (16 x 16 at 32 px): nothing sampled
        return CUT(monet_generator, monet_discriminator, DEFAULT_NCE_LAYERS["unet"],
                   nce_patches=(SIZE // 2) ** 2, head_units=16, seed=0)
    photo_generator = networks.build_generator(SIZE, BASE, seed=2, dropout=0, name="photo_generator")
    photo_discriminator = networks.build_discriminator(SIZE, BASE, seed=4, name="photo_discriminator")
    return CycleGAN(monet_generator, photo_generator, monet_discriminator, photo_discriminator, seed=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    parser.add_argument("--eager", action="store_true", help="run the step eagerly (no graph rewrites)")
    parser.add_argument("--model", default="cyclegan", choices=("cyclegan", "cut"))
    args = parser.parse_args()

    strategy = runtime.pick_strategy(verbose=False)
    if keras.backend.backend() == "jax":
        strategy = runtime.JaxDevices(keras.distribution.list_devices()[:args.devices])
    assert strategy.num_replicas_in_sync == args.devices, strategy.num_replicas_in_sync
    with runtime.run_scope(strategy), strategy.scope():
        gan = build_model(args.model)
        # Adam with a large epsilon: its first step g / (|g| + eps) is then smooth in g (with the
        # default 1e-7 it is sign(g), where float rounding flips near-zero gradients).
        adam = keras.optimizers.Adam(1e-3, epsilon=1e-3)
        optimizer = keras.optimizers.SGD(LR) if args.optimizer == "sgd" else adam
        gan.compile(optimizer, run_eagerly=args.eager)
        weights = {key: v for key, v in checkpoints.checkpoint_variables(gan).items()
                   if key.split("/")[0] in {n.name for n in gan.networks} and len(key.split("/")) == 3}
        if os.path.exists(args.weights):
            with np.load(args.weights) as stored:
                for key, variable in weights.items():
                    variable.assign(stored[key])
        else:
            for seed, network in enumerate(gan.networks):
                spread_weights(network, seed)
            np.savez(args.weights, **{k: keras.ops.convert_to_numpy(v) for k, v in weights.items()})
        before = {k: keras.ops.convert_to_numpy(v).copy() for k, v in weights.items()}
        rng = np.random.default_rng(0)
        batch = tuple(rng.uniform(-1, 1, (args.batch, SIZE, SIZE, 3)).astype(np.float32) for _ in range(2))
        history = gan.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False)
    changes = {f"change:{k}": keras.ops.convert_to_numpy(v) - before[k] for k, v in weights.items()}
    logs = {f"loss:{k}": np.float64(v[-1]) for k, v in history.history.items()}
    np.savez(args.out, **changes, **logs)


if __name__ == "__main__":
    main()
