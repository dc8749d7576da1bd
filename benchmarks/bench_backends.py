"""The kit's train step on each Keras backend, in one run: seconds per step and JAX's speed-up.

Each measurement runs in its own process (Keras fixes its backend when it starts), alternating
between the backends for ``--rounds`` rounds, so load from other processes hits both alike. A
process builds the kit's CycleGAN exactly as ``train`` does (``training.build_gan`` with the speed
policy of its backend and device, :mod:`monet_keras.accel.policy`), trains ``--warmup`` +
``--steps`` steps through ``fit`` on a fixed synthetic batch, and reports the median wall time
of the timed steps (each step's losses are read back, so JAX's asynchronous dispatch is waited
for). Steps, not images: one step is one batch of Monet and one of photos.

``--layers`` times instead one 4x4 stride-2 Conv2D and one Conv2DTranspose (forward and
backward, the U-Net's 128-px shapes) per backend: the layer-level cause of a slow step.

Example: ``python benchmarks/bench_backends.py --sizes 128,256 --batches 1``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(size, batch, precision, steps, warmup, base):
    """Median s/step of the kit's step on this process's backend (run in a child process)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from monet_keras.accel import policy, runtime
    from monet_keras.config import ExperimentConfig
    from monet_keras.train import training

    config = ExperimentConfig(image_size=size, base_filters=base, batch_size=batch, precision=precision)
    strategy = runtime.pick_strategy(verbose=False)
    speed = policy.resolve(strategy, precision)
    times = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["cycle_loss"])  # waits for the step (JAX dispatches asynchronously)
            times.append(time.perf_counter() - self.start)

    rng = np.random.default_rng(0)
    images = [rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32) for _ in range(2)]
    data = tf.data.Dataset.from_tensors(tuple(images)).repeat()
    with runtime.run_scope(strategy):
        gan = training.build_gan(config, strategy, speed)
        gan.fit(data, epochs=1, steps_per_epoch=warmup + steps, callbacks=[StepTimer()], verbose=0)
    return {"backend": keras.backend.backend(), "policy": speed.describe(),
            "seconds": statistics.median(times[warmup:])}


def measure_layers(repeats=3):
    """Seconds per forward + backward of the U-Net's 4x4 stride-2 convolutions at its 64x64 level."""
    import keras
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, 64, 64, 128)).astype("float32")
    same = dict(strides=2, padding="same", use_bias=False)
    layers = {"Conv2D": keras.layers.Conv2D(256, 4, **same),
              "Conv2DTranspose": keras.layers.Conv2DTranspose(64, 4, **same)}
    seconds = {}
    for name, layer in layers.items():
        layer.build(x.shape)
        if keras.backend.backend() == "jax":
            import jax

            def loss(kernel, images, layer=layer):
                return keras.ops.sum(layer.stateless_call([kernel], [], images)[0])
            step = jax.jit(jax.grad(loss, argnums=(0, 1)))
            run = lambda step=step, layer=layer: jax.block_until_ready(step(layer.kernel.value, x))  # noqa: E731
        else:
            import tensorflow as tf

            @tf.function
            def step(images, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(images)
                    total = tf.reduce_sum(layer(images))
                return tape.gradient(total, [layer.kernel, images])
            run = lambda step=step: [g.numpy() for g in step(tf.constant(x))]  # noqa: E731
        run()
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        seconds[name] = (time.perf_counter() - start) / repeats
    return {"backend": keras.backend.backend(), "seconds": seconds}


def _child(backend, args, size, batch, precision):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--sizes", str(size),
               "--batches", str(batch), "--precisions", precision, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--base-filters", str(args.base_filters)]
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{backend} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _words(text):
    return text.split(",")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=_words, default=["tensorflow", "jax"])
    parser.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[128, 256])
    parser.add_argument("--batches", type=lambda t: [int(x) for x in t.split(",")], default=[1])
    parser.add_argument("--precisions", type=_words, default=["float32"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--layers", action="store_true", help="time one conv and one transposed conv")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.layers:
        print(json.dumps(measure_layers()))
        return
    if args.layers:
        for backend in args.backends:
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--layers"],
                                  env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{backend}: " + ", ".join(f"{name} {s:.3f} s" for name, s in result["seconds"].items()),
                  flush=True)
        return
    if args.child:
        print(json.dumps(measure(args.sizes[0], args.batches[0], args.precisions[0], args.steps,
                                 args.warmup, args.base_filters)))
        return
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}; median s/step over "
          f"{args.steps} steps after {args.warmup}, base {args.base_filters}, "
          f"{args.rounds} round(s) per backend")
    first = args.backends[0]
    print(f"{'size':>5} {'batch':>5} {'precision':>15} " + " ".join(f"{b:>11}" for b in args.backends)
          + "".join(f"  {b} speed-up" for b in args.backends[1:]))
    for size in args.sizes:
        for batch in args.batches:
            for precision in args.precisions:
                seconds = {backend: [] for backend in args.backends}
                for _ in range(args.rounds):
                    for backend in args.backends:
                        result = _child(backend, args, size, batch, precision)
                        seconds[backend].append(result["seconds"])
                        print(f"  {result['policy']}: {result['seconds']:.3f} s/step", flush=True)
                median = {backend: statistics.median(times) for backend, times in seconds.items()}
                speedups = "".join(f"  {median[first] / median[b]:>10.2f}x" for b in args.backends[1:])
                print(f"{size:>5} {batch:>5} {precision:>15} "
                      + " ".join(f"{median[b]:>11.3f}" for b in args.backends) + speedups, flush=True)


if __name__ == "__main__":
    main()
