"""``python -m monet_keras package-kaggle OUT_DIR --id USER/monet-keras``: the library, ready for Kaggle.

Kaggle notebooks install nothing, so the library travels as a Kaggle dataset attached to the
notebook. OUT_DIR receives two upload folders:

- ``OUT_DIR/dataset/``: ``monet_keras_lib.zip`` (the ``monet_keras`` and ``tfrecords_tools``
  packages, ``.py`` files only) and ``dataset-metadata.json``. Upload with
  ``kaggle datasets create -p OUT_DIR/dataset`` (later: ``kaggle datasets version -p OUT_DIR/dataset -m MSG``).
  One flat zip works either way Kaggle stores it: unpacked (the notebook finds
  ``.../monet_keras/__init__.py`` under ``/kaggle/input``) or as the zip itself (the notebook puts
  the zip on ``sys.path``; pure-Python packages import from a zip).
- ``OUT_DIR/kernel/``: the notebook and ``kernel-metadata.json`` (:func:`kernel_metadata`: a T4
  GPU, internet off, the competition data and the dataset attached). Upload with ``kaggle kernels push -p OUT_DIR/kernel``.
"""

import json
import os
import re
import shutil
import zipfile

from tfrecords_tools.atomic import atomic_path, write_text
from monet_keras.errors import MonetKerasError

LIBRARY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("monet_keras", "tfrecords_tools")
LIBRARY_ZIP = "monet_keras_lib.zip"
NOTEBOOK = os.path.join(LIBRARY_ROOT, "notebooks", "monet_cyclegan.ipynb")
COMPETITION = "gan-getting-started"
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
    """``[(archive name, path)]`` of every ``.py`` file of the packages, sorted."""
    files = []
    for package in PACKAGES:
        top = os.path.join(LIBRARY_ROOT, package)
        for folder, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    files.append((os.path.relpath(path, LIBRARY_ROOT).replace(os.sep, "/"), path))
    return files


def write_library_zip(path):
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in library_files():
            archive.write(source, name)
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
    write_library_zip(os.path.join(dataset_dir, LIBRARY_ZIP))
    write_text(os.path.join(dataset_dir, "dataset-metadata.json"), json.dumps(
        {"title": title, "id": dataset_id, "licenses": [{"name": license_name}]}, indent=2) + "\n")
    shutil.copyfile(NOTEBOOK, os.path.join(kernel_dir, os.path.basename(NOTEBOOK)))
    metadata = kernel_metadata(f"{owner}/{kernel_slug}", os.path.basename(NOTEBOOK), datasets=[dataset_id],
                               title=kernel_title)
    write_text(os.path.join(kernel_dir, "kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    return dataset_dir, kernel_dir
