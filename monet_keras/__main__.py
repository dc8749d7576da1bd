"""``python -m monet_keras COMMAND ...``: thin command-line front ends over the library.

Each command lives next to the code it drives: a module in ``COMMAND_MODULES`` defines
``register_cli(subparsers)``, which adds its sub-parser and sets ``func(args) -> exit code``.
User errors (:class:`MonetKerasError`) become one ``error:`` line and exit status 2.
"""

import argparse
import importlib
import os
import sys

from monet_keras.errors import run_command

COMMAND_MODULES = (
    "monet_keras.train.training",
    "monet_keras.submit.translate",
    "monet_keras.submit.zipcheck",
    "monet_keras.evaluate.metrics",
    "monet_keras.figures.self_adversarial",
    "monet_keras.experiments.runner",
    "monet_keras.submit.kaggle_package",
)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m monet_keras", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
