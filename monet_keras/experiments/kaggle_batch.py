"""The six experiments on Kaggle's machines, in parallel: one Kaggle kernel per variant.

``python -m monet_keras experiments --on kaggle --owner USER --out RUNS_DIR [--variants ...]
[-p KEY VALUE ...] [--accelerator gpu|tpu|SHAPE] [--max-parallel N] [--dry-run]``

A pushed kernel takes no parameters, so each variant is its own kernel, ``OWNER/PREFIX-VARIANT``
(``Os+DiffAug`` -> ``monet-cyclegan-os-diffaug``), whose notebook is the kit's with the
variant's parameters injected after the ``parameters`` cell, as papermill does it
(:func:`papermill.parameterize.parameterize_notebook`; nothing is executed here). Its push
folder ``RUNS_DIR/kernels/VARIANT/`` holds that notebook and a ``kernel-metadata.json``: the
competition data, the library dataset (``OWNER/monet-keras``, whose wheel the notebook's setup
cell installs), the accelerator as ``machine_shape`` (never a ``docker_image``: one is known to
send TPU runs to the CPU image) and internet off. On Kaggle the notebook finds the data in
Kaggle's input folder and writes its run folder into ``/kaggle/working``, the kernel's output.

The batch pushes at most ``max_parallel`` kernels at a time (Kaggle caps concurrent
accelerator sessions), polls each pushed version (``kaggle kernels status OWNER/SLUG/VERSION``)
with a delay that doubles while nothing changes, and when one has finished downloads its
whole output, every page of it (``kaggle kernels output ... -p RUNS_DIR/VARIANT -o``), then
writes ``RUNS_DIR/VARIANT/result.json`` as the local runner does. A kernel that ends in error
or is cancelled is recorded as failed with Kaggle's failure message and the tail of its log;
the others go on. At the end ``results.csv``, ``results.md`` and ``results.png`` are written
from the downloaded run folders (:func:`monet_keras.experiments.runner.write_results`).

``RUNS_DIR/kaggle_kernels.json`` (written atomically after every change) records each variant's
kernel, pushed version, status and parameters, so a rerun (after Ctrl-C, a crash, a lost
connection) polls the kernels already pushed instead of pushing them again. A variant that
finished with the same parameters is skipped; a failed one, or one whose parameters changed,
is pushed anew; ``force`` pushes every variant anew. Transient network failures of the kaggle
CLI are retried (:func:`tfrecords_tools.kaggle_cli.run_kaggle`); one that persists stops the
batch with the state file intact, to be resumed by running the same command again.

``dry_run`` writes every push folder and logs the kaggle commands a user can run by hand,
without contacting Kaggle and without credentials.
"""

import csv
import dataclasses
import json
import logging
import os
import re
import shutil
import time

import nbformat

from monet_keras.errors import MonetKerasError
from monet_keras.experiments import notebook_cells, runner
from monet_keras.experiments.runlock import runs_dir_lock
from monet_keras.submit.kaggle_package import COMPETITION, kernel_metadata
from monet_keras.train.run_folder import RunFolder
from tfrecords_tools.atomic import write_text
from tfrecords_tools.kaggle_cli import KaggleCliFailed, cli_lines, find_credentials, run_kaggle

logger = logging.getLogger(__name__)

STATE_FILE = "kaggle_kernels.json"
KERNELS_DIR = "kernels"  # RUNS_DIR/kernels/VARIANT/: the push folders
DEFAULT_PREFIX = "monet-cyclegan-"
LIBRARY_DATASET_SLUG = "monet-keras"
ACCELERATORS = {"none": None, "gpu": "NvidiaTeslaT4", "tpu": "TpuV5E8"}
DEFAULT_MAX_PARALLEL = 2
POLL_SECONDS = 60.0
MAX_POLL_SECONDS = 600.0
LOG_TAIL_LINES = 20
ATTEMPTS = 4  # runs of a kaggle command in all when it fails transiently

# Kaggle's KernelWorkerStatus, lowercased; the CLI prints it as "KernelWorkerStatus.COMPLETE".
QUEUED, RUNNING, COMPLETE, ERROR = "queued", "running", "complete", "error"
CANCELLED = ("cancel_requested", "cancel_acknowledged")
PUSHED = "pushed"  # our own status between the push and the first poll
FAILED_STATUSES = (ERROR, *CANCELLED)
_STATUS = re.compile(r'has status "([^"]*)"')
_FAILURE = re.compile(r'Failure message: "(.*)"\s*$', re.DOTALL)
_PUSHED_VERSION = re.compile(r"Kernel version (\d+) successfully (?:pushed|saved)")


# --- parsing what the kaggle CLI prints -----------------------------------------------------

def parse_status(text):
    """A kernel status, lowercased, without an enum prefix: ``KernelWorkerStatus.COMPLETE``,
    ``COMPLETE`` and ``complete`` all give ``complete``."""
    return text.strip().rsplit(".", 1)[-1].strip().lower()


def status_of(stdout):
    """``(status, failure message or "")`` from ``kaggle kernels status`` output."""
    found = _STATUS.search(stdout)
    if not found:
        raise KaggleCliFailed(f"kaggle kernels status printed no status: {' '.join(cli_lines(stdout))[:200]}")
    failure = _FAILURE.search(stdout)
    return parse_status(found.group(1)), failure.group(1).strip() if failure else ""


def pushed_version(stdout):
    """The version number ``kaggle kernels push`` printed; KaggleCliFailed if Kaggle refused the push."""
    errors = [line for line in cli_lines(stdout) if line.startswith("Kernel push error")]
    if errors:
        raise KaggleCliFailed(f"kaggle kernels push failed: {errors[0]}")
    found = _PUSHED_VERSION.search(stdout)
    if not found:
        raise KaggleCliFailed(f"kaggle kernels push printed no version: {' '.join(cli_lines(stdout))[:200]}")
    return int(found.group(1))


# --- the kernels ----------------------------------------------------------------------------

def kernel_slug(prefix, name):
    """``monet-cyclegan-`` + ``Os+DiffAug`` -> ``monet-cyclegan-os-diffaug``."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{prefix}{name}".lower()).strip("-")
    if not 5 <= len(slug) <= 50:
        raise MonetKerasError(f"bad kernel slug {slug!r} (prefix {prefix!r}): Kaggle wants 5-50 characters")
    return slug


def accelerator_shape(accelerator):
    """``gpu`` / ``tpu`` / ``none`` or a Kaggle machine shape -> the machine shape (None = CPU)."""
    return ACCELERATORS.get(accelerator.lower(), accelerator) if accelerator else None


def kaggle_parameters(name, overrides):
    """The parameters injected into one variant's notebook: ``variant`` and the overrides, typed and
    validated as an ExperimentConfig. ``data_dir`` and ``out_dir`` stay the notebook's defaults
    (Kaggle's input folder, ``/kaggle/working``)."""
    values = runner.variant_parameters(name, "", "", overrides)
    return {key: value for key, value in values.items() if key not in ("data_dir", "out_dir")}


def write_push_folder(folder, kernel_id, parameters, accelerator, datasets, competition=COMPETITION):
    """The notebook with ``parameters`` injected and its ``kernel-metadata.json``, in ``folder``."""
    import papermill.iorw
    import papermill.parameterize

    os.makedirs(folder, exist_ok=True)
    path = notebook_cells.write(os.path.join(folder, notebook_cells.NOTEBOOK_NAME))
    notebook = papermill.parameterize.parameterize_notebook(papermill.iorw.load_notebook_node(path),
                                                            parameters)
    write_text(path, nbformat.writes(notebook) + "\n")
    metadata = kernel_metadata(kernel_id, notebook_cells.NOTEBOOK_NAME, competition, accelerator, datasets)
    write_text(os.path.join(folder, "kernel-metadata.json"), json.dumps(metadata, indent=2) + "\n")
    return folder


@dataclasses.dataclass
class Job:
    """One variant's kernel and where its files go."""

    variant: str
    kernel: str  # OWNER/SLUG
    parameters: dict
    push_dir: str
    run_dir: str

    def push_args(self):
        return ["kernels", "push", "-p", self.push_dir]

    def version(self, version=None):
        """``OWNER/SLUG/VERSION``, or ``OWNER/SLUG`` (its latest version) when ``version`` is None."""
        return self.kernel + (f"/{version}" if version else "")

    def status_args(self, version=None):
        return ["kernels", "status", self.version(version)]

    def output_args(self, version=None):
        return ["kernels", "output", self.version(version), "-p", self.run_dir, "-o"]


# --- the state file -------------------------------------------------------------------------

def read_state(runs_dir):
    """``{variant: record}`` from ``RUNS_DIR/kaggle_kernels.json`` ({} when there is none)."""
    path = os.path.join(runs_dir, STATE_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["variants"]
    except (OSError, ValueError, KeyError, TypeError):
        raise MonetKerasError(f"{path} is not a state file of this batch (delete it to start over)") from None


def write_state(runs_dir, state):
    write_text(os.path.join(runs_dir, STATE_FILE), json.dumps({"variants": state}, indent=2) + "\n")


def log_tail(run_dir, lines=LOG_TAIL_LINES):
    """The last lines of the kernel log ``kaggle kernels output`` saved as ``SLUG.log`` ("" if none)."""
    logs = sorted(name for name in os.listdir(run_dir) if name.endswith(".log"))
    if not logs:
        return ""
    with open(os.path.join(run_dir, logs[0]), encoding="utf-8", errors="replace") as f:
        text = f.read()
    return "\n".join(text.strip().splitlines()[-lines:])


# --- the batch ------------------------------------------------------------------------------

class KaggleBatch:
    """Push, poll and download the kernels of one batch; see the module docstring."""

    def __init__(self, jobs, runs_dir, credentials, max_parallel, poll_seconds, sleep, clock):
        self.jobs, self.runs_dir, self.credentials = jobs, runs_dir, credentials
        self.max_parallel, self.poll_seconds = max_parallel, poll_seconds
        self.sleep, self.clock = sleep, clock
        self.state = read_state(runs_dir)

    def kaggle(self, args):
        return run_kaggle(args, self.credentials, attempts=ATTEMPTS, retry_delay=5.0, sleep=self.sleep)

    def save(self, job, **changes):
        self.state[job.variant] = dict(self.state.get(job.variant, {}), **changes)
        write_state(self.runs_dir, self.state)

    def push(self, job):
        """Push the job's kernel as a new version (its run folder starts empty). True if Kaggle took it."""
        logger.info(f"{job.variant}: pushing {job.kernel} from {job.push_dir}")
        if os.path.isdir(job.run_dir):
            shutil.rmtree(job.run_dir)  # the outputs of an earlier version
        self.state[job.variant] = {"kernel": job.kernel, "version": None, "status": ERROR,
                                   "parameters": job.parameters, "pushed_at": self.clock(), "error": "",
                                   "log_tail": ""}
        try:
            version = pushed_version(self.kaggle(job.push_args()))
        except KaggleCliFailed as e:
            self.save(job, error=str(e))
            self.finish(job, failed=True)
            return False
        self.save(job, version=version, status=PUSHED)
        logger.info(f"{job.variant}: pushed {job.kernel} version {version}")
        return True

    def poll(self, job):
        """Ask Kaggle for the job's status; download and record it when it has ended. True if it has."""
        record = self.state[job.variant]
        status, failure = status_of(self.kaggle(job.status_args(record["version"])))
        if status != record["status"]:
            logger.info(f"{job.variant}: {job.kernel} version {record['version']} is {status}")
            self.save(job, status=status)
        if status != COMPLETE and status not in FAILED_STATUSES:
            return False
        os.makedirs(job.run_dir, exist_ok=True)
        if status == COMPLETE:
            self.kaggle(job.output_args(record["version"]))  # every page of outputs, and the log as SLUG.log
            self.save(job, finished_at=self.clock())
            self.finish(job, failed=False)
            return True
        try:  # a failed kernel's log says why; it may have no output at all
            self.kaggle(job.output_args(record["version"]))
        except KaggleCliFailed as e:
            logger.warning(f"{job.variant}: no output of the failed kernel: {e}")
        why = failure or ("cancelled" if status in CANCELLED else "the kernel ended in error")
        self.save(job, error=f"Kaggle kernel {status}: {why}", log_tail=log_tail(job.run_dir),
                  finished_at=self.clock())
        self.finish(job, failed=True)
        return True

    def finish(self, job, failed):
        """``RUN_DIR/result.json`` as the local runner writes it, so the results table reads it."""
        record = self.state[job.variant]
        seconds = record.get("finished_at", record["pushed_at"]) - record["pushed_at"]
        error = record["error"] + (f"; log tail: {record['log_tail'][-300:]}" if record["log_tail"] else "")
        result = {"variant": job.variant, "status": "failed" if failed else "ok",
                  "wall_seconds": round(seconds, 1), "parameters": job.parameters, "kernel": job.kernel,
                  "version": record["version"], "error": " ".join(error.split())}
        os.makedirs(job.run_dir, exist_ok=True)
        write_text(RunFolder(job.run_dir).result_json, json.dumps(result, indent=2) + "\n")
        self.save(job, done=True)
        logger.info(f"{job.variant}: {result['status']}" + (f": {result['error']}" if failed else ""))

    def next_step(self, job):
        """What the state file says is left to do: ``push``, ``poll`` (pushed, not finished) or ``skip``
        (finished with these parameters)."""
        record = self.state.get(job.variant)
        if not record or record.get("parameters") != job.parameters or not record.get("version"):
            return "push"
        if not record.get("done"):
            return "poll"
        return "skip" if record["status"] == COMPLETE else "push"

    def run(self):
        steps = {job.variant: self.next_step(job) for job in self.jobs}
        to_push = [job for job in self.jobs if steps[job.variant] == "push"]
        active = [job for job in self.jobs if steps[job.variant] == "poll"]
        for job in self.jobs:
            version = self.state.get(job.variant, {}).get("version")
            if steps[job.variant] == "skip":
                logger.info(f"{job.variant}: {job.kernel} version {version} finished before; skipped "
                            "(--force pushes it anew)")
            elif steps[job.variant] == "poll":
                logger.info(f"{job.variant}: resuming {job.kernel} version {version}")
        delay, longest = self.poll_seconds, max(MAX_POLL_SECONDS, self.poll_seconds)
        while to_push or active:
            while to_push and len(active) < self.max_parallel:
                job = to_push.pop(0)
                if self.push(job):
                    active.append(job)
            ended = [job for job in active if self.poll(job)]
            active = [job for job in active if job not in ended]
            if active and not (ended and to_push):  # with a slot just freed, push at once
                self.sleep(delay)
                delay = self.poll_seconds if ended else min(2 * delay, longest)


def plan(variants, owner, runs_dir, parameters=None, per_variant=None, prefix=DEFAULT_PREFIX,
         accelerator="gpu", library_dataset=None, competition=COMPETITION):
    """Write the push folder of every variant under ``RUNS_DIR/kernels/``; returns the Jobs."""
    datasets = [f"{owner}/{LIBRARY_DATASET_SLUG}" if library_dataset is None else library_dataset]
    jobs = []
    for name in variants:
        overrides = dict(parameters or {}, **(per_variant or {}).get(name, {}))
        folder = runner.folder_name(name)
        job = Job(name, f"{owner}/{kernel_slug(prefix, name)}", kaggle_parameters(name, overrides),
                  os.path.join(runs_dir, KERNELS_DIR, folder), os.path.join(runs_dir, folder))
        write_push_folder(job.push_dir, job.kernel, job.parameters, accelerator_shape(accelerator),
                          [d for d in datasets if d], competition)
        jobs.append(job)
    return jobs


def run_on_kaggle(runs_dir, variants, owner, parameters=None, per_variant=None, prefix=DEFAULT_PREFIX,
                  accelerator="gpu", max_parallel=DEFAULT_MAX_PARALLEL, force=False, dry_run=False,
                  poll_seconds=POLL_SECONDS, library_dataset=None, sleep=time.sleep, clock=time.time):
    """Run ``variants`` as Kaggle kernels into ``runs_dir`` and write the results table.

    Returns ``{variant: state record}`` (``status`` ``complete`` when it finished, else why not),
    or, with ``dry_run``, the kaggle commands (lists of arguments) a user would run by hand after
    the push folders are written: every push, then each kernel's status and output.
    ``sleep`` and ``clock`` are injectable, so tests do not wait.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", owner or ""):
        raise MonetKerasError(f"bad --owner {owner!r}: expected a Kaggle user name")
    if max_parallel < 1:
        raise MonetKerasError(f"bad --max-parallel {max_parallel}: expected 1 or more")
    runs_dir = os.path.abspath(runs_dir)
    os.makedirs(runs_dir, exist_ok=True)
    with runs_dir_lock(runs_dir):
        jobs = plan(variants, owner, runs_dir, parameters, per_variant, prefix, accelerator, library_dataset)
        if dry_run:
            logger.info(f"dry run: push folders written under {os.path.join(runs_dir, KERNELS_DIR)}; "
                        "nothing sent to Kaggle")
            return ([job.push_args() for job in jobs] + [job.status_args() for job in jobs]
                    + [job.output_args() for job in jobs])
        credentials = find_credentials()
        if force:
            write_state(runs_dir, {k: v for k, v in read_state(runs_dir).items() if k not in variants})
        batch = KaggleBatch(jobs, runs_dir, credentials, max_parallel, poll_seconds, sleep, clock)
        batch.run()
        runner.write_results(runs_dir, f"Kaggle's {COMPETITION} data")
        return {job.variant: batch.state[job.variant] for job in jobs}


def best_kernel(runs_dir):
    """``(variant, OWNER/SLUG, version, MiFID estimate)`` of the finished variant with the lowest MiFID
    estimate in ``RUNS_DIR/results.csv``, as the state file records its kernel."""
    path = os.path.join(runs_dir, "results.csv")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if row["status"] == "ok" and row["mifid"]]
    except (OSError, KeyError):
        raise MonetKerasError(f"no results table {path} (run experiments --on kaggle first)") from None
    state = read_state(runs_dir)
    rows = [row for row in rows if state.get(row["variant"], {}).get("version")]
    if not rows:
        raise MonetKerasError(f"{path} has no variant that finished on Kaggle with a MiFID estimate")
    best = min(rows, key=lambda row: float(row["mifid"]))
    record = state[best["variant"]]
    return best["variant"], record["kernel"], record["version"], float(best["mifid"])
