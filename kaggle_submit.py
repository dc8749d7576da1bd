#!/usr/bin/env python3
"""images.zip -> Kaggle through the official ``kaggle`` CLI: file and notebook (code) submissions.

File submission (uploads a local images.zip, after checking it)::

    python kaggle_submit.py file --zip images.zip -m "Os, 25 epochs"
    python kaggle_submit.py file --generator runs/os/monet_generator.keras \\
        --photos /kaggle/input/gan-getting-started -m "Os, 25 epochs"      # builds images.zip first

runs ``kaggle competitions submit -c gan-getting-started -f images.zip -m MSG``.

Notebook (code) submission, in two steps because the notebook runs on Kaggle first::

    python kaggle_submit.py push --kernel USER/monet-cyclegan --accelerator NvidiaTeslaT4
    # ... wait until that version has finished (kaggle kernels status USER/monet-cyclegan) ...
    python kaggle_submit.py code --kernel USER/monet-cyclegan --version 3 -m "Os, notebook"

After ``python -m monet_keras experiments --on kaggle --out RUNS_DIR``, ``code --from RUNS_DIR``
submits the kernel version of the variant with the lowest MiFID estimate in its results table::

    python kaggle_submit.py code --from runs/kaggle -m "best of the six"

``push`` writes ``kaggle_upload/`` (the notebook and a generated ``kernel-metadata.json``:
competition source, accelerator, internet off, the library dataset) and runs
``kaggle kernels push -p kaggle_upload``; ``code`` runs ``kaggle competitions submit -c COMP
-k USER/SLUG -v VERSION -f images.zip -m MSG``.

Every command takes ``--competition`` (default ``gan-getting-started``) and ``--dry-run``
(check everything, print the exact kaggle command, upload nothing). Credentials are looked up
the way kaggle 2.2.5 does (see :func:`tfrecords_tools.kaggle_cli.find_credentials`); which source is
used is printed, the key or token never is (it is also masked in everything relayed from the CLI).

``file`` runs the whole submission again, up to ``--attempts`` times (default 3, waiting
``--retry-delay`` seconds, doubling), when it failed transiently before the submission was
created: a 502, 503 or 504 from Kaggle (the upload of the file included) or a dropped
connection. A 500, a 4xx or a failure of the final CreateSubmission request is not retried.
A failed kaggle command becomes one ``error:`` line and exit status 1; bad input exits 2.
"""

import argparse
import json
import os
import re
import shutil
import sys

from monet_keras.config import INFERENCE_PRECISIONS
from monet_keras.errors import MonetKerasError, run_command
from monet_keras.submit import zipcheck
from monet_keras.submit.kaggle_package import COMPETITION, kernel_metadata
from tfrecords_tools.atomic import write_text
from tfrecords_tools.kaggle_cli import KaggleCliFailed, cli_lines, find_credentials, run_kaggle, shown

OUTPUT_FILE = "images.zip"
DEFAULT_NOTEBOOK = os.path.join("notebooks", "monet_cyclegan.ipynb")
DEFAULT_FOLDER = "kaggle_upload"
LIBRARY_DATASET_SLUG = "monet-keras"
ACCELERATORS = {"none": None, "gpu": "NvidiaTeslaT4", "tpu": "TpuV5E8"}
EXIT_KAGGLE_FAILED = 1
FINAL_STEP = "CreateSubmission"  # the request that creates the submission: never repeated
_PUSHED = re.compile(r"Kernel version (\d+) successfully (?:pushed|saved)")


# --- the three flows ------------------------------------------------------------------------

def file_submit_args(zip_path, competition, message):
    return ["competitions", "submit", "-c", competition, "-f", zip_path, "-m", message]


def code_submit_args(kernel, version, competition, message, output_file=OUTPUT_FILE):
    return ["competitions", "submit", "-c", competition, "-k", kernel, "-v", str(version),
            "-f", output_file, "-m", message]


_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def resolve_kernel(kernel, credentials):
    """``OWNER/SLUG`` from ``--kernel`` (``OWNER/SLUG`` or ``SLUG`` with the owner from the credentials)."""
    if "/" in kernel:
        owner, slug = kernel.split("/", 1)
    else:
        owner, slug = (credentials.username if credentials else None), kernel
        if not owner:
            raise MonetKerasError(f"bad parameter --kernel {kernel}: give OWNER/{kernel} "
                                  f"(the owner cannot be read from the credentials)")
    if not owner or not _SLUG.match(slug):
        raise MonetKerasError(f"bad parameter --kernel {kernel}: expected OWNER/SLUG, "
                              f"the slug lowercase letters, digits and single hyphens")
    return f"{owner}/{slug}"


def _credentials_or_warn(dry_run):
    try:
        return find_credentials()
    except MonetKerasError as e:
        if not dry_run:
            raise
        print(f"warning: {e} (the real run would stop here)")
        return None


def _check_zip(path, allow_small):
    min_count, max_count = zipcheck.count_range(allow_small)
    if allow_small:
        zipcheck.note_allow_small(min_count, max_count)
    problems = zipcheck.validate_zip(path, min_count, max_count)
    return zipcheck.report(path, problems, min_count, max_count)


def submit_file(args):
    if args.generator or args.photos:
        if not (args.generator and args.photos):
            raise MonetKerasError("give both --generator and --photos to build the zip (or --zip)")
        from monet_keras.submit.translate import write_submission  # TensorFlow only when building
        zip_path = args.zip or OUTPUT_FILE
        print(write_submission(args.generator, args.photos, zip_path, batch_size=args.batch_size,
                                  quality=args.quality, skip_corrupt=args.skip_corrupt,
                                  precision=args.precision).summary())
    elif args.zip:
        zip_path = args.zip
    else:
        raise MonetKerasError("give --zip images.zip, or --generator and --photos to build it")
    if _check_zip(zip_path, args.allow_small) != 0:
        return EXIT_KAGGLE_FAILED
    credentials = _credentials_or_warn(args.dry_run)
    kaggle_args = file_submit_args(zip_path, args.competition, args.message)
    if args.dry_run:
        print(f"dry run, nothing uploaded; would run: {shown(kaggle_args)}")
        return 0
    print(f"uploading {zip_path} ({os.path.getsize(zip_path) / 1e6:.1f} MB) to {args.competition}")
    run_kaggle(kaggle_args, credentials, attempts=args.attempts, retry_delay=args.retry_delay,
               final_step=FINAL_STEP)
    print(f"submitted {zip_path} to {args.competition}")
    return 0


def push_notebook(args):
    notebook = args.notebook
    try:
        with open(notebook, encoding="utf-8") as f:
            cells = json.load(f).get("cells")
    except (OSError, ValueError, AttributeError):
        cells = None
    if not isinstance(cells, list):
        raise MonetKerasError(f"notebook {notebook} is missing or not a Jupyter notebook")
    credentials = _credentials_or_warn(args.dry_run)
    kernel = resolve_kernel(args.kernel, credentials)
    owner = kernel.split("/")[0]
    datasets = list(args.dataset or [])
    library = f"{owner}/{LIBRARY_DATASET_SLUG}" if args.library_dataset is None else args.library_dataset
    if library:
        datasets.insert(0, library)
    accelerator = ACCELERATORS.get(args.accelerator.lower(), args.accelerator)
    code_file = os.path.basename(notebook)
    metadata = kernel_metadata(kernel, code_file, args.competition, accelerator, datasets, args.title,
                               private=not args.public)
    os.makedirs(args.folder, exist_ok=True)
    shutil.copyfile(notebook, os.path.join(args.folder, code_file))
    write_text(os.path.join(args.folder, "kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    kaggle_args = ["kernels", "push", "-p", args.folder]
    print(f"wrote {args.folder}/kernel-metadata.json: {kernel}, accelerator {accelerator or 'none (CPU)'}, "
             f"internet off, competition {args.competition}, datasets {', '.join(datasets) or 'none'}")
    if args.dry_run:
        print(f"dry run, nothing uploaded; would run: {shown(kaggle_args)}")
        return 0
    stdout = run_kaggle(kaggle_args, credentials)
    errors = [line for line in cli_lines(stdout) if line.startswith("Kernel push error")]
    if errors:
        raise KaggleCliFailed(f"kaggle kernels push failed: {errors[0]}")
    pushed = _PUSHED.search(stdout)
    version = pushed.group(1) if pushed else "VERSION"
    print(f"pushed {kernel} version {version}; "
          f"when it has finished running (kaggle kernels status {kernel}), submit it with:\n"
          f"  python kaggle_submit.py code --kernel {kernel} --version {version} -m MESSAGE")
    return 0


def submit_code(args):
    if args.runs_dir:
        if args.kernel or args.version is not None:
            raise MonetKerasError("give either --from RUNS_DIR or --kernel and --version, not both")
        from monet_keras.experiments.kaggle_batch import best_kernel

        name, args.kernel, args.version, mifid = best_kernel(args.runs_dir)
        print(f"best variant in {args.runs_dir}: {name} (MiFID estimate {mifid:.3f}), "
              f"kernel {args.kernel} version {args.version}")
    elif not args.kernel or args.version is None:
        raise MonetKerasError("give --kernel and --version (or --from RUNS_DIR)")
    if args.version < 1:
        raise MonetKerasError(f"bad parameter --version {args.version}: "
                              f"expected a kernel version number >= 1")
    credentials = _credentials_or_warn(args.dry_run)
    kernel = resolve_kernel(args.kernel, credentials)
    kaggle_args = code_submit_args(kernel, args.version, args.competition, args.message, args.output_file)
    if args.dry_run:
        print(f"dry run, nothing submitted; would run: {shown(kaggle_args)}")
        return 0
    run_kaggle(kaggle_args, credentials)
    print(f"submitted {kernel} version {args.version} ({args.output_file}) to {args.competition}")
    return 0


# --- command line ---------------------------------------------------------------------------

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 600, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="kaggle_submit.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub):
        sub.add_argument("-c", "--competition", default=COMPETITION, help=f"default {COMPETITION}")
        sub.add_argument("--dry-run", action="store_true",
                         help="check everything and print the kaggle command; upload nothing")

    file_parser = commands.add_parser("file", help="upload images.zip (kaggle competitions submit -f)")
    file_parser.add_argument("--zip", help="the images.zip to upload (built here with --generator/--photos)")
    file_parser.add_argument("--generator", help="a saved generator (.keras) to build the zip with")
    file_parser.add_argument("--photos",
                             help="the photos to translate (Kaggle-layout folder, JPEGs or .tfrec)")
    file_parser.add_argument("--batch-size", type=int, default=32, dest="batch_size")
    file_parser.add_argument("--quality", type=int, default=95,
                             help="JPEG quality when building (default 95)")
    file_parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                             help="the generator's compute dtype when building (default auto: "
                                  "bfloat16 on a CPU with bfloat16 instructions, else float32)")
    file_parser.add_argument("--skip-corrupt", action="store_true", dest="skip_corrupt",
                             help="when building, leave out (and count) unreadable or odd photos "
                                  "instead of stopping")
    file_parser.add_argument("-m", "--message", required=True, help="the submission description")
    file_parser.add_argument("--allow-small", action="store_true",
                             help=f"accept fewer than {zipcheck.MIN_COUNT:,} images "
                                  f"(demo/test data; Kaggle will not)")
    file_parser.add_argument("--attempts", type=_positive_int, default=3,
                             help="runs of the submission in all when Kaggle fails transiently (default 3)")
    file_parser.add_argument("--retry-delay", type=_seconds, default=5.0, dest="retry_delay",
                             help="seconds before the first retry, doubling after (default 5)")
    common(file_parser)
    file_parser.set_defaults(func=submit_file)

    push_parser = commands.add_parser("push",
                                      help="push the notebook as a Kaggle kernel (kaggle kernels push)")
    push_parser.add_argument("--kernel", required=True,
                             help="OWNER/SLUG, or SLUG to use the credentials' user")
    push_parser.add_argument("--notebook", default=DEFAULT_NOTEBOOK, help=f"default {DEFAULT_NOTEBOOK}")
    push_parser.add_argument("--title", help="kernel title (default: the slug with spaces)")
    push_parser.add_argument("--accelerator", default="gpu",
                             help="gpu (NvidiaTeslaT4), tpu (TpuV5E8), none, or a Kaggle machine shape "
                                  "(default gpu)")
    push_parser.add_argument("--library-dataset", dest="library_dataset",
                             help=f"the Kaggle dataset holding this kit "
                                  f"(default OWNER/{LIBRARY_DATASET_SLUG}; '' for none)")
    push_parser.add_argument("--dataset", action="append",
                             help="another dataset source OWNER/SLUG (repeatable)")
    push_parser.add_argument("--folder", default=DEFAULT_FOLDER,
                             help=f"where the kernel files go (default {DEFAULT_FOLDER})")
    push_parser.add_argument("--public", action="store_true", help="make the kernel public (default private)")
    common(push_parser)
    push_parser.set_defaults(func=push_notebook)

    code_parser = commands.add_parser("code",
                                      help="submit a finished kernel version (kaggle competitions submit -k)")
    code_parser.add_argument("--kernel", help="OWNER/SLUG, or SLUG to use the credentials' user")
    code_parser.add_argument("--version", type=int, help="the kernel version (printed by push)")
    code_parser.add_argument("--from", dest="runs_dir",
                             help="the RUNS_DIR of `experiments --on kaggle`: submit the kernel version of "
                                  "its variant with the lowest MiFID estimate")
    code_parser.add_argument("--output-file", default=OUTPUT_FILE, dest="output_file",
                             help=f"the kernel's output to submit (default {OUTPUT_FILE})")
    code_parser.add_argument("-m", "--message", required=True, help="the submission description")
    common(code_parser)
    code_parser.set_defaults(func=submit_code)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command(args.func, args, exit_codes=((KaggleCliFailed, EXIT_KAGGLE_FAILED),))


if __name__ == "__main__":
    sys.exit(main())
