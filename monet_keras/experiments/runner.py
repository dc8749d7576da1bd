"""The batch runner: the notebook executed once per variant with papermill, and the results table.

``python -m monet_keras experiments --data DIR --out RUNS_DIR [--variants all|Os,Us,...] [-p KEY VALUE]``

For each variant, ``RUNS_DIR/<name>/`` (``Os+Aug`` -> ``Os_Aug``) receives the run (config.json,
history.csv, figures, checkpoints, monet_generator.keras, images.zip, scores.json), the executed
notebook ``monet_cyclegan.ipynb``, papermill's log ``papermill.log`` and ``result.json`` (status,
error, wall time, the parameters it ran with). ``result.json`` says ``running`` from the moment
a variant starts, so a variant whose batch was killed never counts as finished (the table shows
it as ``interrupted``). A variant whose ``result.json`` says it finished with the same
parameters is skipped unless ``force`` (which deletes its folder and starts over); a failed or
interrupted one is run again and resumes from its last checkpoint. A failure is recorded and
the next variant runs; the command exits non-zero if any variant failed.

One batch at a time per RUNS_DIR: the batch holds ``RUNS_DIR/.lock`` (:mod:`monet_keras.experiments.runlock`);
a second one stops at once with one ``error:`` line (exit 2), and the lock of a killed batch is
taken over.

After the runs, ``RUNS_DIR/results.csv``, ``results.md`` and ``results.png`` summarise every
variant found in RUNS_DIR: the MiFID estimate, FID, KID, memorization distance, final losses
and wall time. These are LOCAL estimates against the Monet paintings in the data folder, not
Kaggle's scores (Kaggle scores against paintings nobody sees).

The notebook runs in a kernel of this very interpreter: a private kernelspec is written to a
temporary folder put first on ``JUPYTER_PATH``, so no user-level ``ipykernel install`` is needed.
"""

import csv
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from monet_keras.config import REPORT_VARIANTS, VARIANTS, ExperimentConfig, variant
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import notebook_cells
from monet_keras.experiments.runlock import runs_dir_lock
from monet_keras.train.run_folder import RunFolder
from tfrecords_tools.atomic import write_text

logger = logging.getLogger(__name__)

KERNEL_NAME = "monet-keras-python"
RUNNING = "running"  # result.json status while a variant runs; read back later, it means interrupted

# The founding report's Kaggle MiFID per variant (lower is better).
REPORT_MIFID = {"Os": 38.553, "Us": 38.674, "Os+Aug": 47.369, "Us+Aug": 48.475,
                "Os+DiffAug": 54.991, "Us+DiffAug": 59.493}
# CycleGAN's losses, then CUT's PatchNCE terms (a variant's row leaves the others empty)
LOSSES = ("monet_gen_loss", "photo_gen_loss", "monet_disc_loss", "photo_disc_loss", "cycle_loss", "nce_loss",
          "nce_identity_loss")
COLUMNS = ("variant", "status", "mifid", "fid", "kid", "memorization_distance", "comparable_to_kaggle",
           "extractor") + LOSSES + ("epochs", "wall_seconds", "report_kaggle_mifid", "error")


def folder_name(name):
    """The run folder of a variant: ``Os+DiffAug`` -> ``Os_DiffAug``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def parse_variants(text):
    """``"report"`` (the report's six), ``"all"`` (every named variant) or ``"Os,Us+Aug"`` -> a list of
    variant names in the given order."""
    if text.strip().lower() == "report":
        return list(REPORT_VARIANTS)
    if text.strip().lower() == "all":
        return list(VARIANTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in VARIANTS:
            raise MonetKerasError(f"unknown variant {name!r} in --variants; known: {', '.join(VARIANTS)}")
    if not names:
        raise MonetKerasError("--variants names no variant")
    return list(dict.fromkeys(names))


def parse_parameters(pairs, variants):
    """``[(KEY, VALUE), ...]`` -> ``(common, per_variant)``; ``VARIANT:KEY`` applies to one variant.

    Keys must be ExperimentConfig fields (not ``variant``, ``data_dir`` or ``out_dir``, which
    the runner sets). Values stay strings here; :func:`variant_parameters` converts them.
    """
    fields = {f for f in ExperimentConfig().to_dict()} - {"variant", "data_dir", "out_dir"}
    common, per_variant = {}, {}
    for key, value in pairs:
        target = common
        if ":" in key:
            name, key = key.split(":", 1)
            if name not in variants:
                raise MonetKerasError(f"bad -p {name}:{key}: {name!r} is not among the variants to run "
                                      f"({', '.join(variants)})")
            target = per_variant.setdefault(name, {})
        if key not in fields:
            raise MonetKerasError(f"bad -p {key}: not a parameter the runner passes; "
                                  f"known: {', '.join(sorted(fields))}")
        target[key] = value
    return common, per_variant


def variant_parameters(name, data_dir, run_dir, overrides):
    """The notebook parameters of one variant, typed and validated as an ExperimentConfig.

    Returns a JSON-ready dict: ``variant``, ``data_dir``, ``out_dir`` and the overrides as
    ExperimentConfig converts them (``"64"`` -> 64). Raises MonetKerasError for a bad value.
    """
    config = variant(name, data_dir=data_dir, out_dir=run_dir, **overrides)
    values = config.to_dict()
    return {key: values[key] for key in ("variant", "data_dir", "out_dir", *overrides)}


# --- executing the notebook -----------------------------------------------------------------

def write_kernelspec(jupyter_dir):
    """A kernelspec named KERNEL_NAME that starts ipykernel with this interpreter, in ``jupyter_dir``."""
    folder = os.path.join(jupyter_dir, "kernels", KERNEL_NAME)
    os.makedirs(folder, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})", "language": "python"}
    write_text(os.path.join(folder, "kernel.json"), json.dumps(spec, indent=1) + "\n")
    return folder


def kernel_environment(jupyter_dir, backend="auto"):
    """The environment for papermill and its kernel: the private kernelspec first on JUPYTER_PATH,
    matplotlib headless, TensorFlow's C++ logging quiet, and KERAS_BACKEND set when ``backend``
    names one (the notebook's ``backend = "auto"`` follows it). The kernel is this interpreter, so
    it imports the installed kit."""
    env = dict(os.environ)
    if backend != "auto":
        env["KERAS_BACKEND"] = backend
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (jupyter_dir, env.get("JUPYTER_PATH")) if p)
    env["MPLBACKEND"] = "Agg"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def execute_notebook(notebook, output, parameters, env, log_path, timeout=None):
    """Run ``notebook`` with papermill into ``output``; papermill's log goes to ``log_path``.

    The kernel starts in the folder of ``output`` (the run folder). Returns papermill's exit status (0 = every
    cell ran). ``timeout``: seconds per cell (None = no limit).
    """
    command = [sys.executable, "-m", "papermill", os.fspath(notebook), os.fspath(output),
               "-k", KERNEL_NAME, "-y", json.dumps(parameters),
               "--cwd", os.path.dirname(os.path.abspath(output)), "--no-progress-bar", "--log-output"]
    if timeout:
        command += ["--execution-timeout", str(int(timeout))]
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def notebook_error(executed, log_path=None):
    """One line saying why an execution failed: the first error output of the executed notebook
    (``ename: evalue``), else the last line of papermill's log."""
    try:
        with open(executed, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = " ".join(str(output.get("evalue", "")).split())
                return f"{output.get('ename', 'error')}: {message}"
    if log_path and os.path.exists(log_path):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        if lines:
            return lines[-1]
    return "notebook execution failed (no error recorded)"


def read_result(run_dir):
    try:
        with open(RunFolder(run_dir).result_json, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_variant(name, parameters, run_dir, env, notebook, force=False, timeout=None):
    """Execute the notebook for one variant unless it already finished with ``parameters``.

    Returns the variant's result dict (also written to ``RUN_DIR/result.json``), with
    ``status`` ``"ok"``, ``"failed"`` or ``"skipped"`` (finished before; its recorded result
    is returned with that status). While the notebook runs, ``result.json`` says ``"running"``.
    """
    previous = read_result(run_dir)
    if not force and previous and previous.get("status") == "ok" and previous.get("parameters") == parameters:
        logger.info(f"{name}: finished before in {run_dir}; skipped (--force runs it again)")
        return dict(previous, status="skipped")
    if force and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    run = RunFolder(run_dir)
    executed, log_path = run.notebook_ipynb, run.papermill_log
    if previous and previous.get("status") == RUNNING and not force:
        logger.info(f"{name}: its previous run was interrupted; running it again "
                    "(it resumes from its last checkpoint)")
    logger.info(f"{name}: running the notebook into {run_dir} (log: {log_path})")
    running = {"variant": name, "status": RUNNING, "parameters": parameters, "notebook": executed,
               "error": ""}
    write_text(run.result_json, json.dumps(running, indent=2) + "\n")
    start = time.time()
    status = execute_notebook(notebook, executed, parameters, env, log_path, timeout)
    seconds = time.time() - start
    result = {"variant": name, "status": "ok" if status == 0 else "failed", "wall_seconds": round(seconds, 1),
              "parameters": parameters, "notebook": executed,
              "error": "" if status == 0 else notebook_error(executed, log_path)}
    write_text(run.result_json, json.dumps(result, indent=2) + "\n")
    logger.info(f"{name}: {result['status']} in {seconds:.0f} s"
                + (f": {result['error']}" if result["error"] else ""))
    return result


# --- the results table ----------------------------------------------------------------------

def result_row(run_dir):
    """One row of the results table from a variant's folder (None if it was never run)."""
    result = read_result(run_dir)
    if result is None:
        return None
    run = RunFolder(run_dir)
    scores = {}
    if result["status"] == "ok" and os.path.exists(run.scores_json):
        with open(run.scores_json, encoding="utf-8") as f:
            scores = json.load(f)
    history = run.read_history() if result["status"] == "ok" else []
    last = history[-1] if history else {}
    row = {column: "" for column in COLUMNS}
    status = "interrupted" if result["status"] == RUNNING else result["status"]  # the batch holds the lock
    row.update(variant=result["variant"], status=status, error=result.get("error", ""),
               wall_seconds=result.get("wall_seconds", ""),
               report_kaggle_mifid=REPORT_MIFID.get(result["variant"], ""))
    if scores:
        row.update(mifid=scores["mifid"], fid=scores["fid"], kid=scores["kid_mean"],
                   memorization_distance=scores["memorization_distance"],
                   comparable_to_kaggle=scores["comparable_to_kaggle"], extractor=scores["extractor"])
    if last:
        row.update({loss: last.get(loss, "") for loss in LOSSES}, epochs=last.get("epoch", ""))
    return row


def collect_rows(runs_dir):
    """Rows of every variant with a result in ``runs_dir``, in the report's order."""
    rows = []
    for name in VARIANTS:
        row = result_row(os.path.join(runs_dir, folder_name(name)))
        if row is not None:
            rows.append(row)
    return rows


def _number(value, digits):
    if value == "" or value is None:
        return ""
    return f"{float(value):.{digits}f}"


def results_markdown(rows, data_dir=""):
    """``results.md``: the report-style table, labelled as local estimates."""
    lines = ["# Results of the variants", ""]
    comparable = {row["comparable_to_kaggle"] for row in rows if row["extractor"]}
    extractors = sorted({row["extractor"] for row in rows if row["extractor"]})
    note = ("MiFID, FID, KID and the memorization distance are **local estimates** against the Monet "
            f"paintings in {data_dir or 'the data folder'}; Kaggle scores against paintings nobody sees, "
            "so its numbers differ.")
    if extractors:
        note += f" Feature extractor: {', '.join(extractors)}"
        note += "." if comparable == {True} else " (**NOT comparable to Kaggle**)."
    lines += [note, "",
              "| variant | status | MiFID (est.) | FID | KID | memorization d | G_monet | G_photo | D_monet "
              "| D_photo | cycle | NCE | NCE identity | epochs | wall time (s) | report's Kaggle MiFID |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [row["variant"], row["status"], _number(row["mifid"], 3), _number(row["fid"], 3),
                 _number(row["kid"], 5), _number(row["memorization_distance"], 4),
                 *(_number(row[loss], 4) for loss in LOSSES), str(row["epochs"]),
                 _number(row["wall_seconds"], 0), _number(row["report_kaggle_mifid"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [row for row in rows if row["status"] == "failed"]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {row['variant']}: {row['error']}" for row in failures]
    return "\n".join(lines) + "\n"


def write_results(runs_dir, data_dir=""):
    """Write ``results.csv``, ``results.md`` and ``results.png`` for every variant in ``runs_dir``."""
    from monet_keras.figures import plots

    rows = collect_rows(runs_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(os.path.join(runs_dir, "results.csv"), buffer.getvalue())
    write_text(os.path.join(runs_dir, "results.md"), results_markdown(rows, data_dir))
    finished = [row for row in rows if row["status"] == "ok"]
    if finished:
        names = [row["variant"] for row in finished]
        if any(row["mifid"] != "" for row in finished):
            values = [float(row["mifid"]) if row["mifid"] != "" else math.nan for row in finished]
            reference = ("report (Kaggle)", [REPORT_MIFID.get(n, math.nan) for n in names])
            comparable = all(row["comparable_to_kaggle"] is True for row in finished if row["mifid"] != "")
            label = "local estimate" + ("" if comparable
                                        else " (stand-in features: NOT comparable to Kaggle)")
            plots.variant_bars(names, values, "MiFID: local estimate and the report's Kaggle score",
                               "MiFID (lower is better)", reference, os.path.join(runs_dir, "results.png"),
                               label)
        else:
            values = [float(row["cycle_loss"]) if row["cycle_loss"] != "" else math.nan for row in finished]
            plots.variant_bars(names, values, "final cycle-consistency loss (no evaluation run)",
                               "cycle loss", save_path=os.path.join(runs_dir, "results.png"))
    return rows


def run_experiments(data_dir, runs_dir, variants=None, parameters=None, per_variant=None, force=False,
                    notebook=None, timeout=None, backend="auto"):
    """Run the notebook for each of ``variants`` (default: the report's six) into ``runs_dir``; write the
    results.

    ``parameters``: notebook parameters for every variant; ``per_variant``: ``{name: {...}}`` on
    top for one variant. A variant whose values are invalid fails without running. Returns
    ``{name: result dict}`` for this invocation (status ``ok``, ``failed`` or ``skipped``).
    ``notebook``: the notebook to execute (default: the kit's own, :mod:`.notebook_cells`).
    ``backend``: the notebooks' Keras backend (see :func:`kernel_environment`).
    Holds ``runs_dir``'s lock throughout (MonetKerasError if another batch holds it).
    """
    variants = list(variants or REPORT_VARIANTS)
    data_dir = os.path.abspath(data_dir)
    if not os.path.isdir(data_dir):
        raise MonetKerasError(f"data folder not found: {data_dir}")
    runs_dir = os.path.abspath(runs_dir)
    os.makedirs(runs_dir, exist_ok=True)
    with runs_dir_lock(runs_dir):
        return _run_locked(data_dir, runs_dir, variants, parameters, per_variant, force, notebook, timeout,
                           backend)


def _run_locked(data_dir, runs_dir, variants, parameters, per_variant, force, notebook, timeout, backend):
    """:func:`run_experiments` once the lock is held."""
    outcomes = {}
    with tempfile.TemporaryDirectory(prefix="monet-keras-jupyter-") as jupyter_dir:
        write_kernelspec(jupyter_dir)
        env = kernel_environment(jupyter_dir, backend)
        notebook = notebook or notebook_cells.write(os.path.join(jupyter_dir, notebook_cells.NOTEBOOK_NAME))
        for name in variants:
            run_dir = os.path.join(runs_dir, folder_name(name))
            overrides = dict(parameters or {}, **(per_variant or {}).get(name, {}))
            try:
                values = variant_parameters(name, data_dir, run_dir, overrides)
            except MonetKerasError as e:
                os.makedirs(run_dir, exist_ok=True)
                outcomes[name] = {"variant": name, "status": "failed", "error": str(e), "wall_seconds": 0.0,
                                  "parameters": {k: str(v) for k, v in overrides.items()}}
                write_text(RunFolder(run_dir).result_json, json.dumps(outcomes[name], indent=2) + "\n")
                logger.info(f"{name}: failed before running: {e}")
                continue
            outcomes[name] = run_variant(name, values, run_dir, env, notebook, force, timeout)
    write_results(runs_dir, data_dir)
    return outcomes
