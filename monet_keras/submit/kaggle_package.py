"""``monet-keras package-kaggle OUT_DIR --id USER/monet-keras``: the library, ready for Kaggle.

A Kaggle notebook runs with internet off and must not disturb Kaggle's preinstalled packages,
so the kit travels as a Kaggle dataset holding its wheel, which the notebook's first cell
installs offline with ``pip install --no-index --no-deps``. OUT_DIR receives two upload folders:

- ``OUT_DIR/dataset/``: ``monet_keras-VERSION-py3-none-any.whl`` (the ``monet_keras`` and
  ``tfrecords_tools`` packages) and ``dataset-metadata.json``. Upload with
  ``kaggle datasets create -p OUT_DIR/dataset`` (later:
  ``kaggle datasets version -p OUT_DIR/dataset -m MSG``).
- ``OUT_DIR/kernel/``: the notebook and ``kernel-metadata.json`` (:func:`kernel_metadata`: a T4
  GPU, internet off, the competition data and the dataset attached). Upload with
  ``kaggle kernels push -p OUT_DIR/kernel``.

The wheel is written here from the packages' files (pure Python, no build step), so it can be
made offline and from an installed kit as well as from a checkout. Its metadata names no
dependencies on purpose: on Kaggle the preinstalled TensorFlow, Keras and friends are used.
"""

import base64
import hashlib
import json
import os
import pathlib
import re
import shutil
import zipfile

import monet_keras
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import notebook_cells
from tfrecords_tools import schema
from tfrecords_tools.atomic import atomic_path, write_text

PACKAGES = ("monet_keras", "tfrecords_tools")
DISTRIBUTION = "monet_keras"  # the wheel's file-name form of "monet-keras"
COMPETITION = schema.COMPETITION
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{4,48}[a-z0-9]$")


def check_id(dataset_id, what="--id"):
    """``owner/slug`` as Kaggle wants it (slug: 6-50 lowercase letters, digits and hyphens)."""
    owner, _, slug = dataset_id.partition("/")
    if not owner or not _SLUG.match(slug):
        raise MonetKerasError(f"bad {what} {dataset_id!r}: expected OWNER/slug, the slug 6-50 characters "
                              "of lowercase letters, digits and hyphens")
    return owner, slug


def kernel_metadata(kernel_id, code_file, competition=COMPETITION, accelerator="NvidiaTeslaT4",
                    datasets=(), title=None, private=True):
    """``kernel-metadata.json`` for a notebook that runs the competition with internet off.

    ``accelerator`` is a Kaggle machine shape (``NvidiaTeslaT4``, ``TpuV5E8``) or None for CPU.
    ``title`` defaults to the slug with spaces, so that Kaggle's slug of the title is the slug.
    """
    slug = kernel_id.split("/", 1)[1]
    metadata = {
        "id": kernel_id,
        "title": title or slug.replace("-", " "),
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": bool(private),
        "enable_gpu": bool(accelerator) and accelerator.lower().startswith("nvidia"),
        "enable_tpu": bool(accelerator) and accelerator.lower().startswith("tpu"),
        "enable_internet": False,
        "dataset_sources": list(datasets),
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }
    if accelerator:
        metadata["machine_shape"] = accelerator
    return metadata


def library_files():
    """``[(name in the wheel, path)]`` of every ``.py`` file of the packages, sorted."""
    files = []
    for package in PACKAGES:
        top = os.path.dirname(os.path.abspath(__import__(package).__file__))
        root = os.path.dirname(top)
        for folder, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    files.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return files


def wheel_name(version=None):
    return f"{DISTRIBUTION}-{version or monet_keras.__version__}-py3-none-any.whl"


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(directory):
    """Write the kit's pure-Python wheel into ``directory`` atomically; returns its path.

    A wheel is a zip of the packages plus ``*.dist-info/`` (METADATA, WHEEL, RECORD with each
    file's sha256), as the wheel format (PEP 427) specifies, and pip installs it as any other.
    """
    version = monet_keras.__version__
    info = f"{DISTRIBUTION}-{version}.dist-info"
    contents = [(name, pathlib.Path(path).read_bytes()) for name, path in library_files()]
    contents += [
        (f"{info}/METADATA", f"Metadata-Version: 2.1\nName: monet-keras\nVersion: {version}\n"
                             f"Summary: {monet_keras.__doc__.splitlines()[0]}\n".encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: monet-keras package-kaggle\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\nmonet-keras = monet_keras.cli:main\n"),
    ]
    record = "\n".join([_record_line(name, data) for name, data in contents] + [f"{info}/RECORD,,", ""])
    path = os.path.join(directory, wheel_name(version))
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents + [(f"{info}/RECORD", record.encode())]:
            archive.writestr(name, data)
    return path


def build_package(out_dir, dataset_id, title="monet-keras library", kernel_title="Monet CycleGAN",
                  license_name="other", force=False):
    """Write ``OUT_DIR/dataset/`` and ``OUT_DIR/kernel/`` (see the module docstring); returns both paths."""
    owner, _ = check_id(dataset_id)
    kernel_slug = re.sub(r"[^a-z0-9]+", "-", kernel_title.lower()).strip("-")
    check_id(f"{owner}/{kernel_slug}", "--kernel-title")
    out_dir = os.fspath(out_dir)
    if os.path.isfile(out_dir) or (os.path.isdir(out_dir) and os.listdir(out_dir) and not force):
        raise MonetKerasError(f"output folder {out_dir} exists and is not empty (use --force to replace it)")
    dataset_dir, kernel_dir = os.path.join(out_dir, "dataset"), os.path.join(out_dir, "kernel")
    for folder in (dataset_dir, kernel_dir):
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
    write_wheel(dataset_dir)
    write_text(os.path.join(dataset_dir, "dataset-metadata.json"), json.dumps(
        {"title": title, "id": dataset_id, "licenses": [{"name": license_name}]}, indent=2) + "\n")
    notebook_cells.write(os.path.join(kernel_dir, notebook_cells.NOTEBOOK_NAME))
    metadata = kernel_metadata(f"{owner}/{kernel_slug}", notebook_cells.NOTEBOOK_NAME, datasets=[dataset_id],
                               title=kernel_title)
    write_text(os.path.join(kernel_dir, "kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    return dataset_dir, kernel_dir
