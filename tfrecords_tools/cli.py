"""``python -m tfrecords_tools COMMAND ...``: demo data, conversions and checks of Kaggle data.

Commands: ``demo`` (procedural demo data set in the Kaggle layout), ``from-jpg`` (JPEG folder ->
TFRecords), ``to-jpg`` (TFRecords -> JPEG folder), ``inspect`` (every file, record and image
checked) and ``download`` (the competition data from Kaggle, extracted safely and counted).
Bad usage, missing paths and bad input files print one ``error: ...`` line to stderr and exit 2;
``inspect`` exits 1 when it finds problems in the data, listing all of them; ``download`` exits
1 when the kaggle CLI fails.
"""

import argparse
import os
import sys

from tfrecords_tools import schema
from tfrecords_tools.errors import EXIT_USAGE, UserError, run_command

EXIT_PROBLEMS = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one ``error:`` line and exit status 2."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _demo(args):
    from tfrecords_tools.demo import make_demo

    counts = make_demo(args.out_dir, n_monet=args.monet, n_photos=args.photos, size=args.size, seed=args.seed,
                       shards_monet=args.shards_monet, shards_photo=args.shards_photo, force=args.force)
    print(f"{args.out_dir}: {counts['monet']} Monet paintings and {counts['photo']} photos, "
          f"{args.size}x{args.size}, seed {args.seed}, as TFRecords and JPEGs")
    return 0


def _from_jpg(args):
    from tfrecords_tools.convert import from_jpg

    paths = from_jpg(args.src_dir, args.out_dir, args.domain, shards=args.shards, force=args.force)
    for path in paths:
        print(path)
    return 0


def _to_jpg(args):
    from tfrecords_tools.convert import to_jpg

    count = to_jpg(args.tfrec, args.out_dir, force=args.force)
    print(f"{args.out_dir}: {count} JPEG files")
    return 0


def _sizes(file):
    """``256x256 RGB``, or with counts when they vary: ``256x256 (59), 64x64 (1) L (1), RGB (59)``."""
    def listing(counter, label):
        counts = len(counter) > 1
        return ", ".join(label(k) + (f" ({n})" if counts else "") for k, n in sorted(counter.items()))
    sizes = listing(file.sizes, lambda wh: f"{wh[0]}x{wh[1]}")
    modes = listing(file.modes, str)
    return f"{sizes or 'no decodable image'} {modes}".rstrip()


def _print_file(file):
    unit = "records" if file.kind == "tfrec" else "JPEG files"
    line = f"{file.path}: {file.domain or 'unknown domain'}, {unit} {file.count}, {_sizes(file)}"
    if file.features:
        line += "; features " + " ".join(f"{name}:{kind}" for name, kind in file.features.items())
    if file.problems:
        line += f"; problems {len(file.problems)}"
    print(line, flush=True)


def _inspect(args):
    from tfrecords_tools.scan import scan

    if args.size < 0:
        raise UserError(f"bad --size {args.size}: give the image side in pixels, or 0 for any size")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        raise UserError(f"{missing[0]}: no such file or folder")
    report = scan(args.paths, expected_size=args.size, on_file=_print_file)
    for path in report.ignored:
        print(f"ignored, not part of the Kaggle layout: {path}")
    totals = report.totals()
    parts = [f"{domain or 'unknown'} {count} in {'.tfrec' if kind == 'tfrec' else '.jpg'}"
             for (domain, kind), count in sorted(totals.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))]
    print("total: " + ("; ".join(parts) if parts else "nothing readable"))
    if report.problems:
        size = f"{args.size}x{args.size}" if args.size else "any size"
        print(f"problems {len(report.problems)} (expected RGB JPEGs, {size}; records count from 0):")
        for problem in report.problems:
            print(f"  {problem}")
        return EXIT_PROBLEMS
    print("no problems")
    return 0


def _download(args):
    from tfrecords_tools.download import download, extract
    from tfrecords_tools.kaggle_cli import KaggleCliFailed

    expected = {"monet": args.monet, "photo": args.photos}
    if args.zip:
        totals = extract(args.zip, args.out_dir, force=args.force, expected=expected, size=args.size)
    else:
        try:
            totals = download(args.out_dir, args.competition, force=args.force, expected=expected,
                              size=args.size, attempts=args.attempts, retry_delay=args.retry_delay)
        except KaggleCliFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_PROBLEMS
    parts = [f"{domain} {count} in {kind}" for (domain, kind), count in sorted(totals.items())]
    print(f"{args.out_dir}: verified, {'; '.join(parts)}")
    return 0


def build_parser():
    parser = _Parser(prog="python -m tfrecords_tools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="write a small procedural demo data set in the Kaggle layout")
    demo.add_argument("out_dir", metavar="OUT_DIR")
    demo.add_argument("--monet", type=int, default=60, help="Monet-like paintings (default 60)")
    demo.add_argument("--photos", type=int, default=120, help="photos (default 120)")
    demo.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    demo.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files (default 0)")
    demo.add_argument("--shards-monet", type=int, default=None,
                      help="monet .tfrec files (default min(5, --monet))")
    demo.add_argument("--shards-photo", type=int, default=None,
                      help="photo .tfrec files (default min(20, --photos))")
    demo.add_argument("--force", action="store_true", help="replace OUT_DIR if it is not empty")
    demo.set_defaults(func=_demo)

    from_jpg = commands.add_parser("from-jpg", help="a folder of JPEGs -> OUT_DIR/{domain}_tfrec/*.tfrec")
    from_jpg.add_argument("src_dir", metavar="SRC_DIR")
    from_jpg.add_argument("out_dir", metavar="OUT_DIR")
    from_jpg.add_argument("--domain", required=True, choices=("monet", "photo"))
    from_jpg.add_argument("--shards", type=int, default=None,
                          help="files to write (default: Kaggle's 5 or 20, at most one per image)")
    from_jpg.add_argument("--force", action="store_true", help="replace an existing {domain}_tfrec folder")
    from_jpg.set_defaults(func=_from_jpg)

    to_jpg = commands.add_parser("to-jpg", help="extract the JPEGs of .tfrec files to OUT_DIR/NAME.jpg")
    to_jpg.add_argument("tfrec", metavar="TFREC", nargs="+", help=".tfrec files or folders of them")
    to_jpg.add_argument("out_dir", metavar="OUT_DIR")
    to_jpg.add_argument("--force", action="store_true", help="replace OUT_DIR if it is not empty")
    to_jpg.set_defaults(func=_to_jpg)

    inspect = commands.add_parser(
        "inspect", help="check .tfrec files, JPEG folders or a Kaggle-layout root; exit 1 on any problem")
    inspect.add_argument("paths", metavar="PATH", nargs="+")
    inspect.add_argument("--size", type=int, default=256, help="expected image side (default 256; 0: any)")
    inspect.set_defaults(func=_inspect)

    download = commands.add_parser(
        "download",
        help="download the competition data with the kaggle CLI, extract it safely, verify the counts")
    download.add_argument("out_dir", metavar="DIR")
    download.add_argument("--competition", default=schema.COMPETITION, help=f"default {schema.COMPETITION}")
    download.add_argument("--zip", help="extract and verify this already downloaded zip instead")
    download.add_argument("--force", action="store_true",
                          help="replace DIR if it is not empty (once verified)")
    counts = schema.KAGGLE_COUNTS
    download.add_argument("--monet", type=int, default=counts["monet"],
                          help=f"Monet paintings expected (default {counts['monet']})")
    download.add_argument("--photos", type=int, default=counts["photo"],
                          help=f"photos expected (default {counts['photo']})")
    download.add_argument("--size", type=int, default=256, help="expected image side (default 256; 0: any)")
    download.add_argument("--attempts", type=int, default=3,
                          help="runs of the download in all when Kaggle fails transiently (default 3)")
    download.add_argument("--retry-delay", type=float, default=5.0, dest="retry_delay",
                          help="seconds before the first retry, doubling after (default 5)")
    download.set_defaults(func=_download)
    return parser


def main(argv=None):
    """Run one command; returns the exit status (0 ok, 1 problems found, 2 user error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # silences TensorFlow's start-up notice
    args = build_parser().parse_args(argv)
    return run_command(args.func, args, exit_codes=((OSError, EXIT_USAGE),))
