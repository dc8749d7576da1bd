"""The batch runner: papermill per variant, failures recorded, finished variants skipped, results table."""

import csv
import json
import os
import sys

import pytest

from monet_keras.cli import main
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import runner as ex

pytest_plugins = ["notebook_runs"]  # one session fixture shared with test_notebook.py


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_runner_runs_each_variant_and_reports_failures(experiment_runs):
    runs = experiment_runs
    assert runs.exit_code == 1  # two variants failed
    assert sorted(os.listdir(runs.runs_dir)) == ["Best", "CUT", "Os", "Os_Aug", "Us", "Us_Aug", "results.csv",
                                                  "results.md", "results.png"]
    for name in ("Os", "Us", "CUT", "Best"):
        assert os.path.isfile(os.path.join(runs.run_dir(name), "monet_cyclegan.ipynb"))
        assert os.path.isfile(os.path.join(runs.run_dir(name), "monet_generator.keras"))
    rows = {row["variant"]: row for row in read_csv(os.path.join(runs.runs_dir, "results.csv"))}
    assert list(rows) == ["Os", "Us", "Os+Aug", "Us+Aug", "CUT", "Best"]
    assert [rows[n]["status"] for n in rows] == ["ok", "ok", "failed", "failed", "ok", "ok"]

    # Os+Aug failed inside the notebook (executed notebook kept), Us+Aug before it ran
    assert rows["Os+Aug"]["error"].startswith("UserError: bad parameter holdout_monet=100")
    assert os.path.isfile(os.path.join(runs.run_dir("Os_Aug"), "monet_cyclegan.ipynb"))
    assert "image_size=48" in rows["Us+Aug"]["error"]
    assert not os.path.exists(os.path.join(runs.run_dir("Us_Aug"), "monet_cyclegan.ipynb"))

    # the Os row carries the run's own numbers
    with open(os.path.join(runs.run_dir("Os"), "scores.json"), encoding="utf-8") as f:
        scores = json.load(f)
    last = read_csv(os.path.join(runs.run_dir("Os"), "history.csv"))[-1]
    os_row = rows["Os"]
    assert float(os_row["mifid"]) == pytest.approx(scores["mifid"])
    assert float(os_row["fid"]) == pytest.approx(scores["fid"])
    assert float(os_row["kid"]) == pytest.approx(scores["kid_mean"])
    assert float(os_row["memorization_distance"]) == pytest.approx(scores["memorization_distance"])
    for loss in ("monet_gen_loss", "photo_gen_loss", "monet_disc_loss", "photo_disc_loss", "cycle_loss"):
        assert float(os_row[loss]) == pytest.approx(float(last[loss]))
    assert os_row["epochs"] == "1" and float(os_row["wall_seconds"]) > 0
    assert float(os_row["report_kaggle_mifid"]) == 38.553
    assert rows["Us"]["mifid"] == "" and rows["Us"]["cycle_loss"] != ""  # Us ran without evaluation

    # CUT: one generator, PatchNCE instead of the cycle, no report score to compare with
    cut = rows["CUT"]
    assert not os.path.exists(os.path.join(runs.run_dir("CUT"), "photo_generator.keras"))
    assert cut["mifid"] != "" and cut["report_kaggle_mifid"] == ""
    assert cut["nce_loss"] != "" and cut["nce_identity_loss"] != ""
    assert cut["cycle_loss"] == "" and cut["photo_gen_loss"] == ""
    assert os_row["nce_loss"] == ""

    markdown = open(os.path.join(runs.runs_dir, "results.md"), encoding="utf-8").read()
    assert "local estimates" in markdown and "NOT comparable to Kaggle" in markdown
    assert markdown.count("\n| ") == 7  # header + 6 variants
    assert "- Os+Aug: UserError: bad parameter holdout_monet=100" in markdown


def test_second_invocation_skips_finished_variants(experiment_runs, capsys):
    runs = experiment_runs
    notebooks = [os.path.join(runs.run_dir(n), "monet_cyclegan.ipynb") for n in ("Os", "Us")]
    before = [os.stat(p).st_mtime_ns for p in notebooks]
    capsys.readouterr()
    assert main(runs.argv(variants=("Os", "Us"))) == 0
    out = capsys.readouterr().out
    assert "Os: finished before" in out and "Us: finished before" in out and "running" not in out
    assert [os.stat(p).st_mtime_ns for p in notebooks] == before
    statuses = [row["status"] for row in read_csv(os.path.join(runs.runs_dir, "results.csv"))]
    assert statuses == ["ok", "ok", "failed", "failed", "ok", "ok"]


# --- the pieces ------------------------------------------------------------------------------

def test_folder_names_and_variant_lists():
    assert [ex.folder_name(n) for n in ("Os", "Us+Aug", "Os+DiffAug")] == ["Os", "Us_Aug", "Os_DiffAug"]
    assert ex.parse_variants("report") == ["Os", "Us", "Os+Aug", "Us+Aug", "Os+DiffAug", "Us+DiffAug"]
    assert ex.parse_variants("all") == ["Os", "Us", "Os+Aug", "Us+Aug", "Os+DiffAug", "Us+DiffAug", "CUT",
                                        "Best"]
    assert ex.parse_variants(" Us , Os,Us") == ["Us", "Os"]
    with pytest.raises(MonetKerasError, match="unknown variant 'Bogus'"):
        ex.parse_variants("Os,Bogus")


def test_parameters_are_checked_and_typed():
    common, per_variant = ex.parse_parameters([("epochs", "3"), ("Us:image_size", "64")], ["Os", "Us"])
    assert common == {"epochs": "3"} and per_variant == {"Us": {"image_size": "64"}}
    for pairs, match in (([("bogus", "1")], "bad -p bogus"), ([("out_dir", "x")], "bad -p out_dir"),
                         ([("Os+Aug:epochs", "1")], "not among the variants")):
        with pytest.raises(MonetKerasError, match=match):
            ex.parse_parameters(pairs, ["Os", "Us"])
    values = ex.variant_parameters("Us", "/data", "/runs/Us",
                                   {"epochs": "3", "steps_per_epoch": "None", "evaluate": "false"})
    assert values == {"variant": "Us", "data_dir": "/data", "out_dir": "/runs/Us", "epochs": 3,
                      "steps_per_epoch": None, "evaluate": False}
    with pytest.raises(MonetKerasError, match="epochs"):
        ex.variant_parameters("Us", "/data", "/runs/Us", {"epochs": "three"})


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert main(["experiments", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--variants", "Nope"]) == 2
    assert main(["experiments", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_kernelspec_uses_this_interpreter(tmp_path):
    folder = ex.write_kernelspec(str(tmp_path))
    with open(os.path.join(folder, "kernel.json"), encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    env = ex.kernel_environment(str(tmp_path))
    assert env["JUPYTER_PATH"].split(os.pathsep)[0] == str(tmp_path)
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # the kernel imports the installed kit


def test_notebook_error_names_the_first_error(tmp_path):
    executed = tmp_path / "run.ipynb"
    cells = [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "fine"}]},
             {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "ValueError",
                                                "evalue": "bad\n  thing", "traceback": []}]},
             {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "KeyError", "evalue": "x"}]}]
    executed.write_text(json.dumps({"cells": cells}))
    assert ex.notebook_error(str(executed)) == "ValueError: bad thing"
    log = tmp_path / "papermill.log"
    log.write_text("starting\nNo such kernel named monet-keras-python\n\n")
    assert (ex.notebook_error(str(tmp_path / "none.ipynb"), str(log))
            == "No such kernel named monet-keras-python")
