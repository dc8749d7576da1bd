"""Scanning TFRecord files, JPEG folders and Kaggle-layout roots for every problem.

:func:`scan` decodes every image and returns a :class:`ScanReport`: per file (or JPEG folder)
the record count, image sizes and modes, the features found, and every problem as a
:class:`Problem`, a one-line string naming the file and, inside a TFRecord file, the 0-based
record index. Problems are data; :func:`require_clean` turns them into a
:class:`~tfrecords_tools.errors.UserError` for callers that must stop.
"""

import collections
import dataclasses
import os
from collections.abc import Callable

from tfrecords_tools import schema
from tfrecords_tools.errors import UserError
from tfrecords_tools.images import check_jpeg

KAGGLE_SUBDIRS = tuple(f(d) for d in schema.DOMAINS for f in (schema.tfrec_dir, schema.jpg_dir))


class Problem(str):
    """One problem, as the line ``PATH: record INDEX: WHAT`` (or ``PATH: WHAT`` when it concerns
    a whole file or folder). It is a ``str``; ``path``, ``index`` (``None`` for a whole file)
    and ``what`` are kept as attributes for callers that skip bad records.
    """

    def __new__(cls, path, index, what):
        where = f"{path}: record {index}" if index is not None else f"{path}"
        self = super().__new__(cls, f"{where}: {what}")
        self.path, self.index, self.what = path, index, what
        return self

    def __getnewargs__(self):
        return self.path, self.index, self.what


@dataclasses.dataclass
class FileReport:
    """What one TFRecord file (``kind="tfrec"``) or one JPEG folder (``kind="jpg"``) holds.

    ``count`` is the number of records read (TFRecord) or of ``.jpg``/``.jpeg`` files (folder),
    good or bad. ``sizes`` counts decoded images by ``(width, height)``, ``modes`` by PIL mode.
    ``features`` maps feature name to kind (``bytes``, ``int64``, ``float``) as found in the
    first record that parses (empty for JPEG folders). ``domain`` is taken from the Kaggle file
    or folder name, else from the records' ``target``, else ``None``.
    """

    path: str
    kind: str
    domain: str | None = None
    count: int = 0
    sizes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    modes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    features: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ScanReport:
    """All files scanned, every problem in scan order, and entries left out of a layout root.

    ``ignored`` lists entries of a Kaggle-layout root that are not one of its four folders;
    they are reported, not scanned, and are not problems.
    """

    files: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def totals(self):
        """``{(domain, kind): images}`` summed over files; domain ``None`` when unknown."""
        totals = collections.Counter()
        for file in self.files:
            totals[(file.domain, file.kind)] += file.count
        return dict(totals)


class _Scan:
    """One scan in progress: collects reports, optionally stops at the first problem."""

    def __init__(self, expected_size, fail_fast, on_file):
        self.report = ScanReport()
        self.expected_size = expected_size
        self.fail_fast = fail_fast
        self.on_file = on_file

    def problem(self, file, path, index, what):
        problem = Problem(path, index, what)
        if self.fail_fast:
            raise UserError(problem)
        if file is not None:
            file.problems.append(problem)
        self.report.problems.append(problem)

    def done(self, file):
        self.report.files.append(file)
        if self.on_file is not None:
            self.on_file(file)

    def image(self, file, data, path, index=None):
        info, problems = check_jpeg(data, self.expected_size)
        if info is not None:
            file.sizes[(info.width, info.height)] += 1
            file.modes[info.mode] += 1
        for what in problems:
            self.problem(file, path, index, what)

    def path(self, path):
        path = os.fspath(path)
        if not os.path.exists(path):
            self.problem(None, path, None, "no such file or folder")
        elif os.path.isdir(path):
            self.directory(path)
        elif path.endswith(schema.TFREC_SUFFIX):
            self.tfrecord(path)
        elif path.lower().endswith(schema.JPEG_SUFFIXES):
            self.jpegs(path, [path])
        else:
            self.problem(None, path, None, "not a .tfrec file, a .jpg file or a folder")

    def directory(self, path):
        try:
            entries = sorted(os.listdir(path))
        except OSError as e:
            self.problem(None, path, None, f"cannot list folder ({e.strerror})")
            return
        if not entries:
            self.problem(None, path, None, "empty folder")
            return
        layout = [e for e in entries if e in KAGGLE_SUBDIRS and os.path.isdir(os.path.join(path, e))]
        if layout:
            for entry in entries:
                full = os.path.join(path, entry)
                if entry in layout:
                    self.directory(full)
                else:
                    self.report.ignored.append(full)
            return
        jpegs = []
        found = False
        for entry in entries:
            full = os.path.join(path, entry)
            if os.path.isfile(full) and entry.endswith(schema.TFREC_SUFFIX):
                self.tfrecord(full)
                found = True
            elif os.path.isfile(full) and entry.lower().endswith(schema.JPEG_SUFFIXES):
                jpegs.append(full)
            else:
                kind = "folder" if os.path.isdir(full) else "file"
                self.problem(None, full, None, f"stray {kind}: not a .tfrec or .jpg file")
        if jpegs:
            self.jpegs(path, jpegs)
        elif not found:
            self.problem(None, path, None, "no .tfrec or .jpg files in this folder")

    def jpegs(self, path, files):
        name = os.path.basename(os.path.normpath(path))
        domain = next((d for d in schema.DOMAINS if name == schema.jpg_dir(d)), None)
        file = FileReport(path=path, kind="jpg", domain=domain, count=len(files))
        for full in files:
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError as e:
                self.problem(file, full, None, f"cannot read file ({e.strerror})")
                continue
            self.image(file, data, full)
        self.done(file)

    def tfrecord(self, path):
        from tfrecords_tools.records import iter_serialized

        match = schema.SHARD_PATTERN.match(os.path.basename(path))
        name_domain = match["domain"] if match and match["domain"] in schema.DOMAINS else None
        file = FileReport(path=path, kind="tfrec", domain=name_domain)
        targets = collections.Counter()
        lost = False
        for index, serialized, problem in iter_serialized(path):
            if problem is not None:
                self.problem(file, path, index, problem)
                lost = True
                break
            file.count += 1
            try:
                if not file.features:
                    file.features = schema.feature_kinds(serialized)
                record = schema.decode_record(serialized)
            except ValueError as e:
                self.problem(file, path, index, str(e))
                continue
            self.image(file, record["image"], path, index)
            self.check_target(file, record["target"], name_domain, path, index)
            targets[record["target"]] += 1
        if file.domain is None and targets:
            top = targets.most_common(1)[0][0]
            file.domain = top if top in schema.DOMAINS else None
        if match and not lost and int(match["count"]) != file.count:
            said = int(match["count"])
            self.problem(file, path, None, f"name says {said} records, file holds {file.count}")
        if file.count == 0 and not lost:
            self.problem(file, path, None, "no records")
        self.done(file)

    def check_target(self, file, target, name_domain, path, index):
        if target not in schema.DOMAINS:
            self.problem(file, path, index, f"target {target!r} is not one of {', '.join(schema.DOMAINS)}")
        elif name_domain is not None and target != name_domain:
            self.problem(file, path, index, f"target {target!r} in a {name_domain} file")


def scan(paths, expected_size=schema.KAGGLE_SIZE, fail_fast=False,
         on_file: Callable[[FileReport], None] | None = None):
    """Scan ``paths`` and return a :class:`ScanReport`; never raises for bad data.

    ``paths`` is one path or a list. Each may be a ``.tfrec`` file, a ``.jpg`` file, a folder
    of ``.tfrec`` files, a folder of JPEGs (each folder of JPEGs is one :class:`FileReport`),
    or a Kaggle-layout root holding ``monet_tfrec/``, ``photo_tfrec/``, ``monet_jpg/`` and/or
    ``photo_jpg/``. Every record's and file's image is decoded and must be an RGB JPEG of
    ``expected_size`` x ``expected_size`` pixels (``None`` or 0 accepts any size).

    Problems reported (each naming the file, and the record index inside a TFRecord file): a
    missing path; an empty folder or one without .tfrec/.jpg files; any other file or subfolder
    in such a folder; a truncated or corrupt TFRecord file; a record that is not a
    ``tf.train.Example``; a missing feature or one of the wrong kind; image bytes that are not a
    JPEG (e.g. PNG), do not decode, are not RGB or not of the expected size; a ``target`` that
    is not a domain or not the file's domain; a ``{domain}NN-COUNT.tfrec`` file whose COUNT
    differs from its records; a file without records.

    ``fail_fast`` raises :class:`UserError` with the first problem instead. ``on_file`` is
    called with each :class:`FileReport` as soon as it is complete (for progress output).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    state = _Scan(expected_size or None, fail_fast, on_file)
    for path in paths:
        state.path(path)
    return state.report


def problems_message(problems, hint=""):
    """One line for a non-empty list of problems: the first, and how many more (with ``hint``
    on where to see them all)."""
    if len(problems) == 1:
        return str(problems[0])
    return f"{problems[0]} (and {len(problems) - 1} more problems{'; ' + hint if hint else ''})"


def require_clean(paths, expected_size=schema.KAGGLE_SIZE, fail_fast=False):
    """:func:`scan` ``paths`` and return the report if it has no problem; otherwise raise
    :class:`UserError` naming the first problem and how many others there are (with
    ``fail_fast``, at the first problem without scanning the rest).
    """
    report = scan(paths, expected_size, fail_fast=fail_fast)
    if report.problems:
        hint = "python -m tfrecords_tools inspect lists them"
        raise UserError(problems_message(report.problems, hint))
    return report
