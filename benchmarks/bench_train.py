"""Train-step speed: the Kaggle tutorial's step against the kit's, in one process.

Three variants of one CycleGAN step, built from the same initial weights:

- ``reference``: the tutorial's implementation: Keras's own Conv2D / Conv2DTranspose layers,
  ``keras.optimizers.Adam``, and the straightforward step (``CycleGAN(fused_step=False)``: each
  generator called three times, each discriminator twice);
- ``fused``: the same, with the batched step (``fused_step=True``) only;
- ``kit``: what ``monet_keras`` trains with, as :mod:`monet_keras.accel.policy` chooses for this
  machine: on CPU small-map convolutions as matmuls (:mod:`monet_keras.accel.smallconv`), the
  fused-kernel Adam (:mod:`monet_keras.accel.fused_adam`) and the straightforward step.

The variants are timed alternately step by step (so load from other processes hits all alike):
median seconds per step over ``--steps`` steps after ``--warmup`` steps each. ``--malloc``
picks glibc's allocator settings for the whole process (``tuned``: :func:`malloc.tune_malloc`,
as ``monet_keras`` training does; ``default``: glibc's). ``--isolate`` instead runs each variant
in its own process, ``reference`` with glibc's defaults (as the tutorial runs) and ``kit`` tuned,
alternating processes for ``--rounds`` rounds: the whole difference a user sees.

Also printed:
- achieved FLOP/s against a measured matmul peak of this machine. The model's FLOPs are counted
  analytically from its Conv2D / Conv2DTranspose layers (2 * multiply-adds; norms and
  activations ignored): forward = 3B images through each generator and 2B through each
  discriminator, training = 3 x forward (backward = input and weight gradients). Every variant
  is charged the same FLOPs (the work the math needs), so FLOP/s ratios are speed ratios;
- the input pipeline's images/s (monet_keras.data.paired_dataset over a 256-px demo data set in
  TFRecords), to compare with the images/s training consumes (2 * batch per step).

``--cli`` times what a user feels instead: whole runs of the real ``python -m monet_keras train``
command and of a tutorial-style ``fit`` loop (:func:`tutorial_fit`: Keras's own layers and Adam,
``CycleGAN(fused_step=False)``, ``model.fit`` on a plain TFRecord pipeline, ``verbose=0``, no
callbacks), each in its own process on a fresh 256-px demo data set, ``--cli-epochs`` epochs of
``--cli-steps`` (few, many) steps. Two measures of each one's step:

- marginal: (T(many) - T(few)) / (epochs * (many - few)) over whole runs, which leaves out
  start-up, tracing and the epochs' ends (both runs have as many);
- inside: the last epoch's seconds over its steps in the ``many`` run (the command's
  ``history.csv``; the tutorial loop times its epochs the same way), which leaves out the whole-run
  costs that vary from run to run (the end of ``fit``, the disk) and keeps every per-step cost
  (callbacks, progress bar, input pipeline).

Runs alternate between the two and the bench steps of ``kit`` and ``reference`` (this script, in
its own process) for ``--rounds`` rounds.

Example: ``python benchmarks/bench_train.py --sizes 256 --batches 1 --steps 10``;
``python benchmarks/bench_train.py --cli --sizes 256 --rounds 3 --cli-steps 2,12``;
``--cli-backends tensorflow,jax`` times the command on both Keras backends in the same rounds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from monet_keras.accel import fused_adam, malloc, policy  # noqa: E402
from monet_keras.config import tiny  # noqa: E402
from monet_keras.data.pipeline import paired_dataset  # noqa: E402
from monet_keras.data.source import find_domain  # noqa: E402
from monet_keras.model.cyclegan import CycleGAN  # noqa: E402
from monet_keras.train import training  # noqa: E402


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


VARIANTS = ("reference", "fused", "kit")


def _networks(size, base, precision, small_map_matmul):
    with policy.dtype_policy(precision):
        return training.build_networks(tiny(image_size=size, base_filters=base, seed=0),
                                       small_map_matmul=small_map_matmul)


def _optimizer(precision, fused_adam_kernel):
    optimizer = (fused_adam.Adam if fused_adam_kernel else keras.optimizers.Adam)(2e-4, beta_1=0.5)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer


def _step_function(variant, size, base, precision, jit):
    """(compiled train step, its networks) of ``variant``; same initial weights for every variant.
    ``kit`` takes its switches from the speed policy, as training does."""
    speed = policy.resolve(precision=precision)
    kit = variant == "kit"
    nets = _networks(size, base, precision, small_map_matmul=kit and speed.small_map_matmul)
    fused_step = {"reference": False, "fused": True, "kit": speed.fused_step}[variant]
    gan = CycleGAN(**nets, fused_step=fused_step, seed=0)
    gan.compile(_optimizer(precision, kit and speed.fused_adam))
    return tf.function(gan.train_step, jit_compile=jit), nets


def time_steps(size, batch, precision="float32", jit=False, steps=10, warmup=2, base=64, variants=VARIANTS):
    """Median s/step of each variant, timed alternately, plus the FLOPs per step and the last losses."""
    runs, nets = {}, None
    for variant in variants:
        runs[variant], nets = _step_function(variant, size, base, precision, jit)
    rng = np.random.default_rng(0)
    batch_data = tuple(tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))
                       for _ in range(2))
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
        monet, photo = find_domain(folder, "monet"), find_domain(folder, "photo")
        dataset, _ = paired_dataset(monet, photo, 30, 60, "over", batch, size, seed=0, repeat=True)
        iterator = iter(dataset)
        for _ in range(5):
            next(iterator)
        start = time.perf_counter()
        for _ in range(n_batches):
            next(iterator)
        return 2 * batch * n_batches / (time.perf_counter() - start)


class EpochSeconds(keras.callbacks.Callback):
    """Each epoch's wall seconds, measured as the command's history.csv measures them."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.time() - self._start)


def tutorial_fit(data_dir, size, base, steps, epochs=1):
    """The Kaggle tutorial's training, as its notebook does it: TFRecords -> decode -> zip -> fit,
    Keras's own layers and Adam, the straightforward step, ``verbose=0``; ``epochs`` epochs of
    ``steps`` steps. Prints each epoch's seconds as JSON (the only callback: two clock reads an epoch)."""
    def images(domain):
        files = tf.io.gfile.glob(os.path.join(data_dir, f"{domain}_tfrec", "*.tfrec"))

        def read(record):
            image = tf.io.decode_jpeg(tf.io.parse_single_example(
                record, {"image": tf.io.FixedLenFeature([], tf.string)})["image"], channels=3)
            return tf.reshape(tf.cast(image, tf.float32) / 127.5 - 1, (size, size, 3))
        return tf.data.TFRecordDataset(files).map(read, num_parallel_calls=tf.data.AUTOTUNE).repeat().batch(1)

    keras.utils.set_random_seed(0)
    nets = _networks(size, base, "float32", small_map_matmul=False)
    gan = CycleGAN(**nets, fused_step=False, seed=0)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5))
    pairs = tf.data.Dataset.zip((images("monet"), images("photo")))
    timer = EpochSeconds()
    gan.fit(pairs, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    print(json.dumps({"epoch_seconds": timer.seconds}))


def _timed_run(command):
    """Wall seconds of ``command`` run to its end (it must succeed). The disk's pending writes are
    flushed first: a run of the command writes ~1.8 GB at 256 px (checkpoint and generators), and
    their write-back would otherwise slow whatever runs next."""
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def cli_step_times(args, size):
    """Per round: the marginal and the inside s/step of the ``train`` command (each backend) and of
    :func:`tutorial_fit`, and the kit's and the reference's bench steps (medians over ``--steps``,
    timed alternately in one process); each run in its own process, alternating."""
    from monet_keras.train.run_folder import read_history
    from tfrecords_tools.demo import make_demo

    few, many = args.cli_steps
    epochs = args.cli_epochs
    base = str(args.base_filters)
    commands = [f"command ({backend})" for backend in args.cli_backends]
    results = {name: {"marginal": [], "inside": []} for name in [*commands, "tutorial"]}
    results.update(kit=[], reference=[])
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "demo")
        make_demo(data, n_monet=30, n_photos=60, size=256, seed=0)

        def command(backend):
            def run(steps, name):
                out = os.path.join(tmp, name)
                seconds, _ = _timed_run([
                    sys.executable, "-m", "monet_keras", "train", "--backend", backend, "--data", data,
                    "--out", out, "--image-size", str(size), "--base-filters", base, "--batch-size", "1",
                    "--epochs", str(epochs), "--steps-per-epoch", str(steps), "--time-budget", "none",
                    *args.cli_set])
                return seconds, [row["seconds"] for row in read_history(os.path.join(out, "history.csv"))]
            return run

        def tutorial(steps, name):
            seconds, out = _timed_run([
                sys.executable, os.path.abspath(__file__), "--tutorial-fit", data, "--sizes", str(size),
                "--base-filters", base, "--steps", str(steps), "--cli-epochs", str(epochs)])
            return seconds, json.loads(out.strip().splitlines()[-1])["epoch_seconds"]

        kit = [sys.executable, os.path.abspath(__file__), "--sizes", str(size), "--batches", "1",
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--base-filters", base,
               "--variants", "reference,kit", "--no-peak", "--no-pipeline", "--json"]
        for round_ in range(args.rounds):
            runs = [*((name, command(backend)) for name, backend in zip(commands, args.cli_backends)),
                    ("tutorial", tutorial)]
            for index, (name, run) in enumerate(runs):
                (t_few, _), (t_many, epoch_seconds) = (run(n, f"{index}-{round_}-{n}") for n in (few, many))
                marginal = (t_many - t_few) / (epochs * (many - few))
                inside = epoch_seconds[-1] / many
                results[name]["marginal"].append(marginal)
                results[name]["inside"].append(inside)
                print(f"  {name}: {epochs} epochs of {few} steps {t_few:.1f} s, of {many} {t_many:.1f} s"
                      f" -> marginal {marginal:.3f} s/step; last epoch {inside:.3f} s/step", flush=True)
            _, out = _timed_run(kit)
            bench = json.loads(out.strip().splitlines()[-1])["times"]
            for name in ("kit", "reference"):
                results[name].append(bench[name])
            print(f"  bench steps: kit {bench['kit']:.3f} s/step, reference {bench['reference']:.3f}",
                  flush=True)
    return results


def _cli_main(args):
    few, many = args.cli_steps
    epochs = args.cli_epochs
    if epochs < 2 or not 0 < few < many:
        raise SystemExit("--cli needs --cli-epochs of 2 or more (the last epoch is timed without tracing) "
                         "and --cli-steps few,many with 0 < few < many")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.2f}; base {args.base_filters}, batch 1; {epochs} epochs a run; "
          f"marginal s/step = (T({many} steps) - T({few})) / {epochs * (many - few)}; "
          f"inside = the last epoch's seconds / {many}")
    for size in args.sizes:
        results = cli_step_times(args, size)
        kit = statistics.median(results["kit"])
        tutorial = {m: statistics.median(results["tutorial"][m]) for m in ("marginal", "inside")}
        print(f"{size} px: kit bench step (TensorFlow) {kit:.3f} s/step, reference bench step "
              f"{statistics.median(results['reference']):.3f}; tutorial fit {tutorial['marginal']:.3f} "
              f"marginal, {tutorial['inside']:.3f} inside (medians over rounds)", flush=True)
        for backend in args.cli_backends:
            runs = results[f"command ({backend})"]
            for measure in ("marginal", "inside"):
                command = statistics.median(runs[measure])
                per_round = ", ".join(f"{c / k:.3f}" for c, k in zip(runs[measure], results["kit"]))
                print(f"  command on {backend}, {measure}: {command:.3f} s/step, "
                      f"speed over tutorial {tutorial[measure] / command:.2f}x, "
                      f"command step / kit step {command / kit:.3f} (per round {per_round})", flush=True)


def _ints(text):
    return [int(x) for x in text.split(",")]


def _words(text):
    return text.split(",")


PEAK_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _row(size, batch, precision, jit, times, flops, peak, finite=True):
    ref = times.get("reference")
    cells = [f"{size:>4} {batch:>5} {precision:>14} {jit:>5}"]
    for variant in VARIANTS:
        cells.append(f"{times[variant]:>9.3f}" if variant in times else f"{'-':>9}")
    for variant in ("fused", "kit"):
        cells.append(f"{ref / times[variant]:>6.2f}" if ref and variant in times else f"{'-':>6}")
    best = min(times.values())
    of_peak = f"{flops / best / peak:.0%}" if peak else "-"
    cells.append(f"{flops / 1e9:>10.1f} {flops / best / 1e9:>12.1f} {of_peak:>7} {2 * batch / best:>11.2f}")
    return " ".join(cells) + ("" if finite else "  NON-FINITE LOSSES")


HEADER = (f"{'size':>4} {'batch':>5} {'precision':>14} {'xla':>5} {'reference':>9} {'fused':>9} {'kit':>9} "
          f"{'x fused':>6} {'x kit':>6} {'GFLOP/step':>10} {'best GFLOP/s':>12} {'of peak':>7} "
          f"{'train img/s':>11}")


def _isolated(args, size, batch, precision, jit):
    """Median s/step of reference (glibc's malloc) and kit (tuned), each in its own process,
    alternating processes for ``args.rounds`` rounds."""
    times = {"reference": [], "kit": []}
    for _ in range(args.rounds):
        for variant, allocator in (("reference", "default"), ("kit", "tuned")):
            command = [sys.executable, os.path.abspath(__file__), "--sizes", str(size),
                       "--batches", str(batch), "--precisions", precision, "--jit", jit,
                       "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--base-filters", str(args.base_filters), "--variants", variant,
                       "--malloc", allocator, "--no-peak", "--no-pipeline", "--json"]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            times[variant].append(result["times"][variant])
            print(f"  {variant} ({allocator} malloc): {result['times'][variant]:.3f} s/step", flush=True)
    return {name: statistics.median(t) for name, t in times.items()}, result["flops"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_ints, default=[128, 256])
    parser.add_argument("--batches", type=_ints, default=[1, 4])
    parser.add_argument("--precisions", type=_words, default=["float32"],
                        help="comma-separated: float32, mixed_bfloat16, mixed_float16")
    parser.add_argument("--jit", type=_words, default=["false"], help="comma-separated: false, true")
    parser.add_argument("--variants", type=_words, default=list(VARIANTS),
                        help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                        help="glibc allocator settings for this process (tuned: as monet_keras training)")
    parser.add_argument("--isolate", action="store_true",
                        help="reference (default malloc) and kit (tuned) in separate processes, alternating")
    parser.add_argument("--rounds", type=int, default=2, help="with --isolate: processes per variant")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--base-filters", type=int, default=64)
    parser.add_argument("--no-peak", action="store_true", help="skip the matmul peak")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input pipeline")
    parser.add_argument("--cli", action="store_true",
                        help="time the real train command and a tutorial-style fit loop "
                             "(marginal and inside s/step)")
    parser.add_argument("--cli-steps", type=_ints, default=[2, 12],
                        help="with --cli: few,many steps per epoch of a run")
    parser.add_argument("--cli-epochs", type=int, default=2, help="with --cli: epochs per run (2 or more)")
    parser.add_argument("--cli-backends", type=_words, default=["tensorflow"],
                        help="with --cli: the Keras backends to time the train command on (tensorflow,jax)")
    parser.add_argument("--cli-set", action="append", default=[], metavar="ARG",
                        help="with --cli: one more argument for the train command (repeatable), e.g. "
                             "--cli-set=--set --cli-set=pool_size=50")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one config, for --isolate
    parser.add_argument("--tutorial-fit", metavar="DATA", help=argparse.SUPPRESS)  # one run, for --cli
    args = parser.parse_args(argv)
    if args.tutorial_fit:
        return tutorial_fit(args.tutorial_fit, args.sizes[0], args.base_filters, args.steps, args.cli_epochs)
    if args.cli:
        return _cli_main(args)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    unknown = set(args.precisions) - set(PEAK_DTYPES)
    if unknown:
        parser.error(f"unknown precision(s): {', '.join(sorted(unknown))}")
    tuned = malloc.tune_malloc() if args.malloc == "tuned" and not args.isolate else False

    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    if not args.json:
        print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: {devices}, "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, "
              + ("reference and kit in separate processes (reference: glibc's malloc, kit: tuned)"
                 if args.isolate else f"malloc: {'tuned' if tuned else 'glibc default'}"))
    peaks = {}
    if not args.no_peak:
        # Only the dtypes measured: under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN has no bfloat16 matmul.
        for dtype in dict.fromkeys(["float32"] + [PEAK_DTYPES[p] for p in args.precisions]):
            peaks[dtype] = matmul_peak(dtype)
            print(f"matmul peak {dtype}: {peaks[dtype] / 1e9:.1f} GFLOP/s")
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            for precision in args.precisions:
                for jit in args.jit:
                    finite = True
                    if args.isolate:
                        times, flops = _isolated(args, size, batch, precision, jit)
                    else:
                        times, flops, logs = time_steps(size, batch, precision, jit == "true", args.steps,
                                                        args.warmup, args.base_filters, args.variants)
                        finite = all(np.isfinite(v) for run in logs.values() for v in run.values())
                    if args.json:
                        print(json.dumps({"times": times, "flops": flops, "finite": finite}))
                        return
                    row = _row(size, batch, precision, jit, times, flops, peaks.get(PEAK_DTYPES[precision]),
                               finite)
                    rows.append(row)
                    print(row, flush=True)
    if not args.no_pipeline:
        for batch in args.batches:
            print(f"input pipeline (paired_dataset, 256-px TFRecords, batch {batch}): "
                  f"{pipeline_images_per_second(batch):.0f} images/s")
    print()
    print(HEADER)
    print("\n".join(rows))
    print("s/step medians; x fused, x kit: reference s/step over theirs; "
          "of peak: the fastest variant's FLOP/s over the matmul peak of the step's compute dtype")


if __name__ == "__main__":
    main()
