"""Where the competition data is, which files hold each domain's images, and which of them are good.

The data folder (:func:`find_data`), first match wins:

1. a given folder (or ``gs://`` path);
2. Kaggle's input folder ``/kaggle/input/gan-getting-started``; under a TPUStrategy (the old TPU
   Nodes, whose TPU cannot read local files) the GCS path that
   ``kaggle_datasets.KaggleDatasets().get_gcs_path()`` returns for it;
3. the built-in demo data (:func:`tfrecords_tools.demo.make_demo`), written once into a demo
   folder and reused, where the caller names one.

One domain's files (:func:`find_domain`, :func:`find_images`, as a :class:`DomainFiles`): a
Kaggle-layout root (``{domain}_tfrec/*.tfrec`` and/or ``{domain}_jpg/*.jpg``), a plain folder of
``.tfrec`` files or JPEGs, or one ``.tfrec`` file. The preference rule, the same everywhere:
**where both are there, the TFRecords are read** (the same images in a few large files, and
what a TPU reads from GCS); the JPEGs only when there are no TFRecords.

Checking (:meth:`DomainFiles.checked`) decodes every image once. Bad records either stop with
one error naming the first, or (``skip_corrupt``) are marked in the returned DomainFiles, which
every reader of :mod:`monet_keras.data.pipeline` and the evaluation then leaves out. Files are
found with ``tf.io.gfile``, so the same code lists local folders and GCS buckets; data on GCS
is not checked (the scanner reads local files).
"""

import dataclasses
import logging
import os

import tensorflow as tf

from monet_keras.errors import MonetKerasError
from tfrecords_tools import schema
from tfrecords_tools.images import check_jpeg
from tfrecords_tools.records import iter_records
from tfrecords_tools.scan import scan

logger = logging.getLogger(__name__)

KAGGLE_INPUT = f"/kaggle/input/{schema.COMPETITION}"
KAGGLE_WORKING = "/kaggle/working"  # where Kaggle collects a notebook's outputs

# The built-in demo data: Kaggle's layout and image size, far fewer images.
DEMO_MONET = 60
DEMO_PHOTOS = 120
DEMO_SIZE = 256
DEMO_SEED = 0

SKIP_HINT = "skip them with --skip-corrupt (skip_corrupt = True in the notebook)"


def on_kaggle():
    return os.path.isdir("/kaggle/input") or "KAGGLE_KERNEL_RUN_TYPE" in os.environ


# --- the data folder -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DataSource:
    """A data folder and where it was found: ``"given"``, ``"kaggle"``, ``"kaggle-gcs"`` or ``"demo"``."""

    path: str
    origin: str

    def describe(self):
        words = {"given": "the data_dir parameter", "kaggle": "the Kaggle input folder",
                 "kaggle-gcs": "the Kaggle data's GCS bucket (TPU)",
                 "demo": "built-in demo data (procedural scenes, not Monet paintings)"}
        return f"data: {self.path} ({words[self.origin]})"


def find_data(data_dir="", demo_dir=None, strategy=None, demo_monet=DEMO_MONET, demo_photos=DEMO_PHOTOS,
              demo_size=DEMO_SIZE):
    """The data folder to train on, as a :class:`DataSource` (see the module docstring for the order).

    A given ``data_dir`` that does not exist raises :class:`MonetKerasError`. Without a
    ``demo_dir``, finding nothing raises too; with one, demo data already there is reused, else
    ``make_demo`` writes ``demo_monet`` paintings and ``demo_photos`` photos of ``demo_size`` px there.
    """
    if data_dir:
        data_dir = os.fspath(data_dir)
        if not (data_dir.startswith("gs://") or os.path.isdir(data_dir)):
            raise MonetKerasError(f"data folder not found: {data_dir}")
        return DataSource(data_dir, "given")
    if os.path.isdir(KAGGLE_INPUT):
        if isinstance(strategy, tf.distribute.TPUStrategy):
            try:
                from kaggle_datasets import KaggleDatasets  # available on Kaggle only
                return DataSource(KaggleDatasets().get_gcs_path(schema.COMPETITION), "kaggle-gcs")
            except ImportError:
                pass
        return DataSource(KAGGLE_INPUT, "kaggle")
    if demo_dir is None:
        raise MonetKerasError(f"no data folder given and no Kaggle data at {KAGGLE_INPUT}")
    demo_dir = os.fspath(demo_dir)
    if not _is_data_folder(demo_dir):
        from tfrecords_tools.demo import make_demo

        make_demo(demo_dir, n_monet=demo_monet, n_photos=demo_photos, size=demo_size, seed=DEMO_SEED)
    return DataSource(demo_dir, "demo")


def _is_data_folder(path):
    try:
        DataFolder.find(path)
    except MonetKerasError:
        return False
    return True


# --- one domain's files ----------------------------------------------------------------------

def record_key(path, index=None):
    """How a bad record is marked for skipping: ``path#index`` inside a TFRecord file, else the path."""
    return path if index is None else f"{path}#{index}"


@dataclasses.dataclass(frozen=True)
class DomainFiles:
    """Where one domain's images are: ``kind`` is ``"tfrecord"`` or ``"jpeg"``.

    ``skip`` is None until :meth:`checked`; then the record keys (:func:`record_key`) of the
    bad records that every reader leaves out (empty when all are good).
    """

    domain: str
    kind: str
    paths: tuple
    skip: frozenset | None = None

    @property
    def where(self):
        return os.path.dirname(self.paths[0])

    def checked(self, skip_corrupt=False):
        """These files with every image checked, once: all must be readable RGB JPEGs of one size
        (that of the first image).

        A problem raises MonetKerasError naming the first one (file and record) and the count;
        with ``skip_corrupt`` the bad records are reported (a logged warning) and marked in
        ``skip``. Files already checked are returned as they are, without reading anything.
        """
        if self.skip is not None:
            return self
        if self.where.startswith("gs://"):
            return dataclasses.replace(self, skip=frozenset())
        problems = scan(list(self.paths), expected_size=self._first_image_size()).problems
        if problems and not skip_corrupt:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise MonetKerasError(f"bad {self.domain} data: {problems[0]}{more}; list all with "
                                  f"`python -m tfrecords_tools inspect {self.where}`, or {SKIP_HINT}")
        if problems:
            logger.warning(f"skipping {len(problems)} unreadable or odd {self.domain} record(s) "
                           f"(skip_corrupt), first: {problems[0]}")
        return dataclasses.replace(self, skip=frozenset(record_key(p.path, p.index) for p in problems))

    def _first_image_size(self):
        """Side of the first decodable image: the size every other image must have."""
        if self.kind == "jpeg":
            blobs = (_read_bytes(p) for p in self.paths)
        else:
            blobs = (record["image"] for path in self.paths
                     for _, record, _problem in iter_records(path) if record is not None)
        for blob in blobs:
            info, _ = check_jpeg(blob)
            if info is not None:
                return info.width
        return None


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@dataclasses.dataclass(frozen=True)
class DataFolder:
    """Both domains of one Kaggle-layout data folder."""

    root: str
    monet: DomainFiles
    photo: DomainFiles

    @classmethod
    def find(cls, root):
        root = os.fspath(root)
        return cls(root, find_domain(root, "monet"), find_domain(root, "photo"))

    def domain(self, name):
        return {"monet": self.monet, "photo": self.photo}[name]

    def checked(self, skip_corrupt=False):
        """Both domains :meth:`DomainFiles.checked`."""
        return dataclasses.replace(self, monet=self.monet.checked(skip_corrupt),
                                   photo=self.photo.checked(skip_corrupt))


def _tfrecords(folder, domain):
    paths = tuple(sorted(tf.io.gfile.glob(os.path.join(folder, "*" + schema.TFREC_SUFFIX))))
    return DomainFiles(domain, "tfrecord", paths) if paths else None


def _jpegs(folder, domain):
    paths = tuple(sorted(p for p in tf.io.gfile.glob(os.path.join(folder, "*"))
                         if p.lower().endswith(schema.JPEG_SUFFIXES) and not tf.io.gfile.isdir(p)))
    return DomainFiles(domain, "jpeg", paths) if paths else None


def _preferred(tfrec_folder, jpg_folder, domain):
    """The preference rule: the TFRecords in ``tfrec_folder``, else the JPEGs in ``jpg_folder``, else None."""
    return _tfrecords(tfrec_folder, domain) or _jpegs(jpg_folder, domain)


def find_domain(data_dir, domain):
    """``domain``'s files in a Kaggle-layout folder: TFRecords preferred to JPEGs."""
    data_dir = os.fspath(data_dir)
    if not tf.io.gfile.isdir(data_dir):
        raise MonetKerasError(f"data folder not found: {data_dir}")
    tfrec_dir = os.path.join(data_dir, schema.tfrec_dir(domain))
    jpg_dir = os.path.join(data_dir, schema.jpg_dir(domain))
    found = _preferred(tfrec_dir, jpg_dir, domain)
    if found is not None:
        return found
    if tf.io.gfile.isdir(tfrec_dir) or tf.io.gfile.isdir(jpg_dir):
        raise MonetKerasError(f"no {domain} images in {data_dir}: {schema.tfrec_dir(domain)}/ has no "
                              f".tfrec files and {schema.jpg_dir(domain)}/ has no .jpg files")
    raise MonetKerasError(f"{data_dir} is not a Kaggle-layout data folder: neither "
                          f"{schema.tfrec_dir(domain)}/ nor {schema.jpg_dir(domain)}/ exists")


def find_images(path, domain="photo"):
    """``domain``'s images at ``path``: a Kaggle-layout root (:func:`find_domain`), a folder of
    .tfrec files or JPEGs (TFRecords preferred), or one .tfrec file.

    DomainFiles are returned as they are, so callers take either a path or files already checked.
    """
    if isinstance(path, DomainFiles):
        return path
    path = os.fspath(path)
    if not tf.io.gfile.isdir(path):
        if not tf.io.gfile.exists(path):
            raise MonetKerasError(f"no such file or folder: {path}")
        if not path.endswith(schema.TFREC_SUFFIX):
            raise MonetKerasError(f"not a folder of images or a .tfrec file: {path}")
        return DomainFiles(domain, "tfrecord", (path,))
    if any(tf.io.gfile.isdir(os.path.join(path, sub))
           for sub in (schema.tfrec_dir(domain), schema.jpg_dir(domain))):
        return find_domain(path, domain)
    found = _preferred(path, path, domain)
    if found is not None:
        return found
    others = sorted(tf.io.gfile.listdir(path))
    held = f"it holds {len(others)} other entries, e.g. {others[0]}" if others else "it is empty"
    raise MonetKerasError(f"no .jpg or .tfrec files in {path}: {held}")
