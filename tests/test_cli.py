"""The command lines (monet_keras.cli, tfrecords_tools.cli): same flags and defaults as before, and
``--help``, ``validate-zip`` and ``inspect`` of JPEGs start without TensorFlow.

Each command runs in a fresh interpreter that reports, even when the command exits, which of
TensorFlow, Keras and JAX it imported.
"""

import io
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from monet_keras import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("jax", "keras", "tensorflow")
PROBE = ("import runpy, sys\n"
         "module = sys.argv.pop(1)\n"
         "try:\n"
         "    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
         "finally:\n"
         f"    print('imported:', ' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")

# Every command's options as the help lists them, with their defaults, as they were when each
# command declared its own parser (before cli.py), plus --skip-corrupt on translate and evaluate;
# "-p, --parameter" is one option.
OPTIONS = {
    "train": {"--data": None, "--out": None, "--variant": "Os", "--config": None, "--image-size": None,
              "--epochs": None, "--batch-size": None, "--base-filters": None, "--model": None,
              "--generator": None, "--upsample": None, "--unet-inner-norm, --no-unet-inner-norm": None,
              "--seed": None,
              "--steps-per-epoch": None, "--time-budget": None, "--skip-corrupt": False, "--set": None,
              "--backend": "auto"},
    "translate": {"--generator": None, "--photos": None, "--out": "images.zip", "--batch-size": 32,
                  "--quality": 95, "--image-size": None, "--precision": "auto", "--allow-small": False,
                  "--skip-corrupt": False,
                  "--backend": "auto"},
    "validate-zip": {"--allow-small": False},
    "evaluate": {"--generated": None, "--real": None, "--skip-corrupt": False, "--weights": None,
                 "--stand-in": False, "--out": None, "--report": None, "--batch-size": 32,
                 "--image-size": None, "--kid-subset-size": 1000, "--kid-subsets": 100, "--seed": 0,
                 "--quiet": False, "--backend": "auto"},
    "figures": {"--run": None, "--data": None, "--backend": "auto"},
    "experiments": {"--data": None, "--out": None, "--variants": "report", "-p, --parameter": None,
                    "--force": False, "--timeout": None, "--time-budget": None, "--on": "local",
                    "--owner": None, "--accelerator": None, "--max-parallel": None,
                    "--kernel-prefix": "monet-cyclegan-", "--poll-interval": 60.0, "--dry-run": False,
                    "--backend": "auto"},
    "package-kaggle": {"--id": None, "--title": "monet-keras library", "--kernel-title": "Monet CycleGAN",
                       "--license": "other", "--force": False},
}
# The least each command parses (its required arguments), so the defaults can be read back.
REQUIRED = {"train": ["--out", "o"], "translate": ["--generator", "g", "--photos", "p"],
            "validate-zip": ["z"], "evaluate": ["--generated", "g", "--real", "r"], "figures": ["--run", "r"],
            "experiments": ["--data", "d", "--out", "o"], "package-kaggle": ["o", "--id", "i"]}
TFRECORDS_TOOLS_OPTIONS = {
    "demo": {"--monet", "--photos", "--size", "--seed", "--shards-monet", "--shards-photo", "--force"},
    "from-jpg": {"--domain", "--shards", "--force"},
    "to-jpg": {"--force"},
    "inspect": {"--size"},
    "download": {"--competition", "--zip", "--force", "--monet", "--photos", "--size", "--attempts",
                 "--retry-delay"},
}


def run(module, *args):
    """``python -m module ARGS`` -> (exit status, stdout, the heavy modules it imported)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", COLUMNS="100")
    done = subprocess.run([sys.executable, "-c", PROBE, module, *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    report = done.stderr.strip().splitlines()[-1]
    assert report.startswith("imported:"), done.stderr
    return done.returncode, done.stdout, report.split()[1:]


def listed_options(help_text):
    """The option lines of an argparse help, each as ``-p, --parameter`` (metavars left out)."""
    return {", ".join(re.findall(r"(?:^|, )(-{1,2}[\w-]+)", line.strip()))
            for line in help_text.splitlines() if line.startswith("  -")}


def jpeg(size, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_top_level_help_lists_every_command_without_tensorflow():
    status, out, heavy = run("monet_keras", "--help")
    assert (status, heavy) == (0, [])
    assert [name for name in OPTIONS if re.search(rf"^    {name}\b", out, re.M)] == list(OPTIONS)


@pytest.mark.parametrize("command", list(OPTIONS))
def test_command_help_lists_the_same_options_without_tensorflow(command):
    status, out, heavy = run("monet_keras", command, "--help")
    assert (status, heavy) == (0, [])
    assert out.startswith(f"usage: python -m monet_keras {command} ")
    assert listed_options(out) == set(OPTIONS[command]) | {"-h, --help"}


@pytest.mark.parametrize("command", list(OPTIONS))
def test_command_defaults_are_unchanged(command):
    args = vars(cli.build_parser().parse_args([command, *REQUIRED[command]]))
    for option, default in OPTIONS[command].items():
        if option not in REQUIRED[command]:
            first_long = next(name for name in option.split(", ") if name.startswith("--"))
            assert args[first_long[2:].replace("-", "_")] == default, option


def test_translate_defaults_are_the_library_defaults():
    from monet_keras.submit import translate

    args = cli.build_parser().parse_args(["translate", *REQUIRED["translate"]])
    assert (args.batch_size, args.quality) == (translate.DEFAULT_BATCH_SIZE, translate.DEFAULT_QUALITY)


def test_validate_zip_runs_without_tensorflow(tmp_path):
    good, bad = tmp_path / "images.zip", tmp_path / "bad.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("a.jpg", jpeg(256))
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("a.jpg", jpeg(64))
    status, out, heavy = run("monet_keras", "validate-zip", good, "--allow-small")
    assert (status, heavy) == (0, [])
    assert f"ok: {good}: 1 JPEG images" in out
    status, out, heavy = run("monet_keras", "validate-zip", bad, "--allow-small")
    assert (status, heavy) == (1, [])
    assert "a.jpg: is 64x64, not 256x256" in out


def test_probe_sees_tensorflow_when_a_command_needs_it(tmp_path):
    """train loads TensorFlow (its config check does); a bad value exits 2."""
    status, _, heavy = run("monet_keras", "train", "--data", tmp_path, "--out", tmp_path / "run",
                           "--epochs", "0")
    assert status == 2 and "tensorflow" in heavy


def test_tfrecords_tools_help_lists_the_same_options_without_tensorflow():
    status, out, heavy = run("tfrecords_tools", "--help")
    assert (status, heavy) == (0, [])
    for command, options in TFRECORDS_TOOLS_OPTIONS.items():
        status, out, heavy = run("tfrecords_tools", command, "--help")
        assert (status, heavy) == (0, [])
        assert {option.split(", ")[-1] for option in listed_options(out)} == options | {"--help"}


def test_tfrecords_tools_inspect_of_jpegs_runs_without_tensorflow(tmp_path):
    (tmp_path / "monet_jpg").mkdir()
    for seed in range(2):
        (tmp_path / "monet_jpg" / f"m{seed}.jpg").write_bytes(jpeg(32, seed))
    status, out, heavy = run("tfrecords_tools", "inspect", tmp_path, "--size", "32")
    assert (status, heavy) == (0, [])
    assert "monet 2 in .jpg" in out and "no problems" in out
