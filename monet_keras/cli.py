"""``python -m monet_keras COMMAND ...``: thin command-line front ends over the library.

Every command's arguments are declared here, and each command imports the library module it
drives only when it runs, so ``--help`` and ``validate-zip`` start without TensorFlow (the
modules imported at the top are TensorFlow-free). User errors (:class:`MonetKerasError`)
become one ``error:`` line and exit status 2.
"""

import argparse
import logging
import os
import sys

from monet_keras.config import (
    GENERATORS,
    INFERENCE_PRECISIONS,
    MODELS,
    UPSAMPLINGS,
    VARIANTS,
    ExperimentConfig,
    variant,
)
from monet_keras.errors import MonetKerasError, run_command
from monet_keras.evaluate import features, metrics
from monet_keras.submit import zipcheck

logger = logging.getLogger(__name__)

# --- train ----------------------------------------------------------------------------------

def add_backend_argument(parser):
    from monet_keras.accel.backends import CHOICES

    parser.add_argument("--backend", default="auto", choices=CHOICES,
                        help="Keras backend: auto (default) = KERAS_BACKEND if set, else JAX on a TPU VM "
                             "and TensorFlow elsewhere")
    parser.set_defaults(chooses_backend=True)


def add_config_arguments(parser):
    parser.add_argument("--variant", default="Os", choices=list(VARIANTS),
                        help="a named variant: the report's six, or the kit's own (default Os)")
    parser.add_argument("--config", help="a config.json to start from (e.g. a previous run's)")
    parser.add_argument("--image-size", type=int, dest="image_size")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument("--base-filters", type=int, dest="base_filters")
    parser.add_argument("--model", choices=MODELS,
                        help="cyclegan (the report's) or cut (Park et al. 2020: one generator, PatchNCE)")
    parser.add_argument("--generator", choices=GENERATORS,
                        help="unet (the report's) or resnet (Zhu et al.'s CycleGAN generator)")
    parser.add_argument("--upsample", choices=UPSAMPLINGS,
                        help="the generator's up-sampling: transpose (stride-2 transposed convolutions, the "
                             "report's) or resize (nearest-neighbour x2 + 3x3 convolution, no checkerboard)")
    parser.add_argument("--unet-inner-norm", action=argparse.BooleanOptionalAction, dest="unet_inner_norm",
                        help="instance norm on the U-Net's 1x1 bottleneck (on in the report; there it passes "
                             "only its beta)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps-per-epoch", type=int, dest="steps_per_epoch")
    parser.add_argument("--time-budget", dest="time_budget", metavar="DURATION",
                        help="wall-clock limit of the run, e.g. 4h30m, 90m, 600s or seconds; auto (default): "
                             "Kaggle's run limit minus a margin on Kaggle, none elsewhere; none: no limit")
    parser.add_argument("--skip-corrupt", action="store_true", dest="skip_corrupt",
                        help="skip (and count) unreadable or odd images instead of stopping before training")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override any ExperimentConfig field, e.g. --set cycle_noise_std=0.08 "
                             "(repeatable)")


def config_from_args(args) -> ExperimentConfig:
    """The variant, then ``--config`` file values, then explicit flags, then ``--set`` pairs."""
    from monet_keras.data.source import find_data

    overrides = {}
    if args.config:
        overrides.update(ExperimentConfig.load(args.config).to_dict())
        overrides.pop("variant", None)
    for field in ("image_size", "epochs", "batch_size", "base_filters", "model", "generator", "upsample",
                  "unet_inner_norm", "seed", "steps_per_epoch", "time_budget"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.skip_corrupt:
        overrides["skip_corrupt"] = True
    if args.data:
        overrides["data_dir"] = args.data
    if args.out:
        overrides["out_dir"] = args.out
    config = variant(args.variant).replace(**overrides).with_overrides(args.set or [])
    if not config.data_dir:
        config = config.replace(data_dir=find_data().path)
    return config.validate()


def _train(args):
    from monet_keras.train.training import train

    result = train(config_from_args(args))
    print(f"done: {result.epochs_trained} epoch(s) in {result.seconds:.0f} s; outputs in {result.run_dir}")
    return 0


def _add_train(commands):
    parser = commands.add_parser(
        "train", help="train a CycleGAN variant on a Kaggle-layout folder",
        description="One training run: config -> data -> CycleGAN.fit -> RUN_DIR; running it again on the "
                    "same RUN_DIR resumes from the last finished epoch.")
    parser.add_argument("--data", help="Kaggle-layout data folder (default: the Kaggle input folder)")
    parser.add_argument("--out", required=True, help="run folder (resumed if it holds a checkpoint)")
    add_config_arguments(parser)
    add_backend_argument(parser)
    parser.set_defaults(func=_train)


# --- translate ------------------------------------------------------------------------------

# translate.DEFAULT_BATCH_SIZE and DEFAULT_QUALITY; that module loads TensorFlow, so they are
# repeated here (tests/test_cli.py checks that they agree).
TRANSLATE_BATCH_SIZE = 32
TRANSLATE_QUALITY = 95


def _translate(args):
    from monet_keras.data.source import find_images
    from monet_keras.submit import translate

    min_count, max_count = zipcheck.count_range(args.allow_small)
    if args.allow_small:
        zipcheck.note_allow_small(min_count, max_count)
    files = find_images(args.photos, "photo")
    expected = translate.count_photos(files)
    if expected is not None and not min_count <= expected <= max_count:
        raise MonetKerasError(f"{args.photos} holds {expected} photos; "
                              f"Kaggle needs {min_count:,}-{max_count:,} images "
                              f"(--allow-small accepts fewer, for demo data)")
    result = translate.write_submission(args.generator, files, args.out, batch_size=args.batch_size,
                                        quality=args.quality, image_size=args.image_size,
                                        skip_corrupt=args.skip_corrupt, precision=args.precision)
    print(result.summary())
    return zipcheck.report(args.out, zipcheck.validate_zip(args.out, min_count, max_count),
                           min_count, max_count)


def _add_translate(commands):
    parser = commands.add_parser(
        "translate", help="translate photos with a saved generator into images.zip",
        description="Photos -> ``images.zip``: translate every photo with a saved generator and stream the "
                    "JPEGs into a zip.")
    parser.add_argument("--generator", required=True, help="the saved generator (.keras)")
    parser.add_argument("--photos", required=True,
                        help="Kaggle-layout folder (photo_tfrec/ or photo_jpg/), "
                             "a folder of JPEGs or .tfrec files")
    parser.add_argument("--out", default="images.zip", help="the zip to write (default images.zip)")
    parser.add_argument("--batch-size", type=int, default=TRANSLATE_BATCH_SIZE, dest="batch_size")
    parser.add_argument("--quality", type=int, default=TRANSLATE_QUALITY,
                        help=f"JPEG quality 1-100 (default {TRANSLATE_QUALITY})")
    parser.add_argument("--image-size", type=int, dest="image_size",
                        help="input size, only for a generator without a fixed one")
    parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                        help="the generator's compute dtype (default auto: bfloat16 on a CPU with "
                             "bfloat16 instructions, else float32)")
    parser.add_argument("--allow-small", action="store_true",
                        help=f"accept fewer than {zipcheck.MIN_COUNT:,} photos (demo data); says so")
    parser.add_argument("--skip-corrupt", action="store_true", dest="skip_corrupt",
                        help="check every photo first and leave out (and count) unreadable or odd ones, "
                             "as train --skip-corrupt does")
    add_backend_argument(parser)
    parser.set_defaults(func=_translate)


# --- validate-zip ---------------------------------------------------------------------------

def _validate_zip(args):
    min_count, max_count = zipcheck.count_range(args.allow_small)
    if args.allow_small:
        zipcheck.note_allow_small(min_count, max_count)
    return zipcheck.report(args.zip, zipcheck.validate_zip(args.zip, min_count, max_count),
                           min_count, max_count)


def _add_validate_zip(commands):
    parser = commands.add_parser(
        "validate-zip", help="check images.zip against the competition's rules",
        description="Check an ``images.zip`` against the competition's rules "
                    "before it costs a daily submission.")
    parser.add_argument("zip", help="the images.zip to check")
    parser.add_argument("--allow-small", action="store_true",
                        help=f"accept fewer than {zipcheck.MIN_COUNT:,} images (demo data); says so")
    parser.set_defaults(func=_validate_zip)


# --- evaluate -------------------------------------------------------------------------------

def _extractor(args):
    if args.stand_in:
        if args.weights is not None:
            raise MonetKerasError("use either --weights or --stand-in, not both")
        return features.standin_extractor(image_size=args.image_size or features.INCEPTION_SIZE)
    return features.extractor_for_weights(args.weights or "auto", image_size=args.image_size)


def _evaluate(args):
    scores = metrics.evaluate(args.generated, args.real, _extractor(args), batch_size=args.batch_size,
                              kid_subset_size=args.kid_subset_size, kid_subsets=args.kid_subsets,
                              seed=args.seed, json_path=args.out, report_path=args.report,
                              verbose=0 if args.quiet else 1,
                              skip_corrupt=args.skip_corrupt)
    print(metrics.format_scores(scores))
    for label, path in (("scores", args.out), ("memorization report", args.report)):
        if path:
            print(f"{label}: {path}")
    return 0


def _add_evaluate(commands):
    parser = commands.add_parser(
        "evaluate", help="MiFID, FID, KID and a memorization report for generated images",
        description="Score generated images against Monet paintings as Kaggle does (MiFID), with FID, "
                    "KID and the memorization distance. Without pretrained InceptionV3 weights it stops "
                    "with one line, unless --stand-in asks for the stand-in extractor (numbers then "
                    "NOT comparable to Kaggle).")
    parser.add_argument("--generated", required=True,
                        help="images.zip, or a folder of generated JPEGs (or .tfrec files)")
    parser.add_argument("--real", required=True,
                        help="folder of Monet JPEGs (or .tfrec files), or a Kaggle-layout root "
                             "(monet_tfrec/, else monet_jpg/)")
    parser.add_argument("--skip-corrupt", action="store_true", dest="skip_corrupt",
                        help="check the images of the --real/--generated folders first and leave out "
                             "(and count) unreadable or odd ones, as train --skip-corrupt does")
    parser.add_argument("--weights", default=None,
                        help=f"Kaggle's extractor: {features.GRAPH_FILE} (any .pb, the 2015 Inception "
                             f"graph); or InceptionV3 weights: a .h5 file, or 'imagenet' (Keras download); "
                             f"default ${features.WEIGHTS_ENV} if set, else imagenet")
    parser.add_argument("--stand-in", action="store_true",
                        help=f"use the {features.STANDIN_NAME} extractor (fixed random weights) instead of "
                             "InceptionV3; numbers NOT comparable to Kaggle")
    parser.add_argument("--out", help="write the scores as JSON to this file")
    parser.add_argument("--report", help="write the memorization report (PNG) to this file")
    parser.add_argument("--batch-size", type=int, default=32, help="images per extractor call (default 32)")
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"side images are resized to before the extractor (default: "
                             f"{features.INCEPTION_SIZE} for InceptionV3, {features.KAGGLE_IMAGE_SIZE} for "
                             f"the .pb graph, which resizes to 299 itself)")
    parser.add_argument("--kid-subset-size", type=int, default=metrics.KID_SUBSET_SIZE)
    parser.add_argument("--kid-subsets", type=int, default=metrics.KID_SUBSETS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the KID subsets (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress output, only the table")
    add_backend_argument(parser)
    parser.set_defaults(func=_evaluate)


# --- figures --------------------------------------------------------------------------------

def _figures(args):
    from monet_keras.figures.self_adversarial import write_figures

    write_figures(args.run, args.data)
    return 0


def _add_figures(commands):
    parser = commands.add_parser(
        "figures", help="write the report's diagnostic figures for a run",
        description="Write Fig. 11 (augmentation), Fig. 13 (DiffAugment) and Fig. 15 (the self-adversarial "
                    "check) into the run folder.")
    parser.add_argument("--run", required=True, help="a finished RUN_DIR")
    parser.add_argument("--data", help="data folder (default: the run's)")
    add_backend_argument(parser)
    parser.set_defaults(func=_figures)


# --- experiments ----------------------------------------------------------------------------

def _experiments(args):
    from monet_keras.experiments import runner

    variants = runner.parse_variants(args.variants)
    common, per_variant = runner.parse_parameters(args.parameter or [], variants)
    if args.time_budget is not None:
        common["time_budget"] = args.time_budget
    if args.on == "kaggle":
        return _experiments_on_kaggle(args, variants, common, per_variant)
    for flag in ("owner", "accelerator", "max_parallel", "dry_run"):
        if getattr(args, flag) not in (None, False):
            raise MonetKerasError(f"--{flag.replace('_', '-')} is for --on kaggle")
    if not args.data:
        raise MonetKerasError("--data is required (the Kaggle-layout data folder) unless --on kaggle")
    outcomes = runner.run_experiments(args.data, args.out, variants, common, per_variant, force=args.force,
                                      timeout=args.timeout, backend=args.backend)
    from monet_keras.train.run_folder import RunFolder

    runs_dir = os.path.abspath(args.out)
    print(f"results: {os.path.join(runs_dir, 'results.md')} (local estimates, not Kaggle scores)")
    failed = [name for name, outcome in outcomes.items() if outcome["status"] == "failed"]
    for name in failed:
        run = RunFolder(os.path.join(runs_dir, runner.folder_name(name)))
        record = run.papermill_log if os.path.exists(run.papermill_log) else run.result_json
        print(f"failed: {name} (see {record})", file=sys.stderr)
    return 1 if failed else 0


def _experiments_on_kaggle(args, variants, common, per_variant):
    from monet_keras.experiments import kaggle_batch
    from tfrecords_tools.kaggle_cli import KaggleCliFailed, shown

    if not args.owner:
        raise MonetKerasError("--on kaggle needs --owner USER (the Kaggle user the kernels belong to)")
    if args.backend != "auto":
        raise MonetKerasError("--backend is for --on local (on Kaggle each kernel picks its own: "
                              "JAX on a TPU)")
    for flag, value in (("--data", args.data), ("--timeout", args.timeout)):
        if value is not None:
            raise MonetKerasError(f"{flag} is for --on local (on Kaggle each kernel reads the competition's "
                                  f"data and runs within Kaggle's limit)")
    runs_dir = os.path.abspath(args.out)
    try:
        outcomes = kaggle_batch.run_on_kaggle(
            runs_dir, variants, args.owner, common, per_variant, prefix=args.kernel_prefix,
            accelerator=args.accelerator or "gpu",
            max_parallel=args.max_parallel or kaggle_batch.DEFAULT_MAX_PARALLEL, force=args.force,
            dry_run=args.dry_run, poll_seconds=args.poll_interval)
    except KaggleCliFailed as e:
        print(f"error: {e}; the batch's state is in {os.path.join(runs_dir, kaggle_batch.STATE_FILE)}: "
              f"run the same command again to resume", file=sys.stderr)
        return 1
    if args.dry_run:
        for command in outcomes:
            print(shown(command))
        return 0
    print(f"results: {os.path.join(runs_dir, 'results.md')} (estimates made on Kaggle, not Kaggle scores)")
    failed = [name for name, record in outcomes.items() if record["status"] != kaggle_batch.COMPLETE]
    for name in failed:
        print(f"failed: {name} ({outcomes[name]['kernel']}): {outcomes[name]['error']}", file=sys.stderr)
    return 1 if failed else 0


def _add_experiments(commands):
    parser = commands.add_parser(
        "experiments", help="run the notebook once per variant with papermill and tabulate the results",
        description="Execute notebooks/monet_cyclegan.ipynb once per variant (one executed notebook "
                    "and run folder each), then write RUNS_DIR/results.csv, results.md and results.png. "
                    "With --on kaggle each variant runs as its own Kaggle kernel, several at a time, and "
                    "their outputs are downloaded into RUNS_DIR. Exit status 1 if any variant failed.")
    parser.add_argument("--on", choices=("local", "kaggle"), default="local",
                        help="local (default): papermill here, one variant after another; kaggle: one Kaggle "
                             "kernel per variant, run in parallel on Kaggle's machines")
    parser.add_argument("--data", help="Kaggle-layout data folder (required with --on local)")
    parser.add_argument("--out", required=True, help="folder for the run folders and the results")
    parser.add_argument("--variants", default="report",
                        help=f"'report' (default: the report's six), 'all' ({', '.join(VARIANTS)}) or a "
                             "comma list, e.g. Os,Us,CUT")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                        help="a notebook parameter (an ExperimentConfig field) for every variant, e.g. "
                             "-p epochs 5; VARIANT:KEY sets it for one variant, e.g. -p Us:epochs 8 "
                             "(repeatable)")
    parser.add_argument("--force", action="store_true",
                        help="delete and rerun variants that already finished with the same parameters")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds allowed per notebook cell (default: none)")
    parser.add_argument("--backend", default="auto", choices=("auto", "tensorflow", "jax"),
                        help="Keras backend of the notebooks run here (--on local): auto (default) = "
                             "KERAS_BACKEND if set, else JAX on a TPU VM and TensorFlow elsewhere")
    parser.add_argument("--time-budget", dest="time_budget", metavar="DURATION",
                        help="each variant's wall-clock limit (the notebook's time_budget), e.g. 4h30m, 90m, "
                             "600s; same as -p time_budget DURATION")
    kaggle = parser.add_argument_group("--on kaggle")
    kaggle.add_argument("--owner", help="the Kaggle user the kernels belong to (and the library dataset "
                                        "OWNER/monet-keras)")
    kaggle.add_argument("--accelerator", help="gpu (NvidiaTeslaT4, default), tpu (TpuV5E8), none, "
                                              "or a Kaggle machine shape")
    kaggle.add_argument("--max-parallel", type=int, dest="max_parallel",
                        help="kernels running at once (default 2; Kaggle caps accelerator sessions)")
    kaggle.add_argument("--kernel-prefix", default="monet-cyclegan-", dest="kernel_prefix",
                        help="kernel slug = prefix + variant (default monet-cyclegan-, "
                             "e.g. monet-cyclegan-os-aug)")
    kaggle.add_argument("--poll-interval", type=float, default=60.0, dest="poll_interval",
                        help="seconds between status checks at first, doubling while nothing changes "
                             "(up to 600; default 60)")
    kaggle.add_argument("--dry-run", action="store_true", dest="dry_run",
                        help="write the push folders under OUT/kernels/ and print the kaggle commands; "
                             "contact nothing (no credentials needed)")
    parser.set_defaults(func=_experiments)


# --- package-kaggle -------------------------------------------------------------------------

def _package_kaggle(args):
    from monet_keras.submit.kaggle_package import build_package

    dataset_dir, kernel_dir = build_package(args.out_dir, args.id, args.title, args.kernel_title,
                                            args.license, args.force)
    print(f"library dataset: {dataset_dir}")
    print(f"  first upload:  kaggle datasets create -p {dataset_dir}")
    print(f"  new version:   kaggle datasets version -p {dataset_dir} -m \"update monet_keras\"")
    print(f"notebook: {kernel_dir}")
    print(f"  upload and run: kaggle kernels push -p {kernel_dir}")
    return 0


def _add_package_kaggle(commands):
    parser = commands.add_parser(
        "package-kaggle", help="build Kaggle upload folders: the library as a dataset, and the notebook",
        description="Build Kaggle upload folders: the library's wheel as a dataset (the notebook installs it "
                    "offline), and the notebook with its kernel-metadata.json.")
    parser.add_argument("out_dir", help="folder to write dataset/ and kernel/ into")
    parser.add_argument("--id", required=True,
                        help="the dataset's Kaggle id, OWNER/slug (e.g. jane/monet-keras)")
    parser.add_argument("--title", default="monet-keras library", help="the dataset's title")
    parser.add_argument("--kernel-title", default="Monet CycleGAN",
                        help="the notebook's title on Kaggle (its id is OWNER/<title as slug>)")
    parser.add_argument("--license", default="other",
                        help="license name in dataset-metadata.json (default other)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    parser.set_defaults(func=_package_kaggle)


# --- the command line -----------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m monet_keras",
        description="Train the report's CycleGAN variants on Kaggle-layout data, translate photos into "
                    "images.zip, check it, evaluate it and run the six experiments (also as `monet-keras`).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_translate, _add_validate_zip, _add_evaluate, _add_figures, _add_experiments,
                _add_package_kaggle):
        add(commands)
    return parser


def main(argv=None):
    """Run one command; returns its exit status (2 for a user error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return run_command(_run, args)


def _run(args):
    """The command, on its Keras backend (chosen before the command's modules import Keras).
    ``train`` states its devices and precision itself (with its speed policy); the other Keras
    commands compute in float32 on the devices stated here."""
    if getattr(args, "chooses_backend", False):  # experiments passes its --backend to the notebooks
        from monet_keras.accel.backends import choose_backend

        choose_backend(args.backend)
        if args.func is not _train:
            from monet_keras.accel import runtime

            logger.info(f"runs on {runtime.describe(runtime.current_strategy())}, float32")
    return args.func(args)
