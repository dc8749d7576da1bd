"""Concurrent and interrupted ``python -m monet_keras experiments`` batches (RUNS_DIR/.lock).

The notebook itself is replaced by a stand-in (``execute_notebook`` patched) that records which
variants ran, so these tests cost no papermill run; tests/test_experiments.py runs the real one.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from monet_keras.cli import main
from monet_keras.errors import MonetKerasError
from monet_keras.experiments import runner as ex
from monet_keras.experiments.runlock import LOCK_FILE, runs_dir_lock
from monet_keras.train.run_folder import RunFolder

VARIANTS = ("Os", "Us", "Os+Aug")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """(data dir, runs dir, list of variants the stand-in notebook ran, argv for main)."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    data.mkdir()
    ran = []

    def fake_notebook(notebook, output, parameters, env, log_path, timeout=None):
        with open(RunFolder(parameters["out_dir"]).result_json, encoding="utf-8") as f:
            assert json.load(f)["status"] == "running"  # marked before the notebook starts
        ran.append(parameters["variant"])
        if parameters["variant"] in interrupt:
            raise KeyboardInterrupt  # the batch is stopped in the middle of this variant
        with open(output, "w", encoding="utf-8") as f:
            json.dump({"cells": []}, f)
        return 0

    interrupt = set()
    monkeypatch.setattr(ex, "execute_notebook", fake_notebook)
    argv = ["experiments", "--data", str(data), "--out", str(runs), "--variants", ",".join(VARIANTS),
            "-p", "epochs", "1"]
    return data, runs, ran, argv, interrupt


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(runs, pid, host=None):
    runs.mkdir(exist_ok=True)
    lock = {"pid": pid, "host": host or socket.gethostname(), "started": "2025-01-01 00:00:00"}
    (runs / LOCK_FILE).write_text(json.dumps(lock))
    return lock


def test_held_lock_refuses_a_second_batch(setup, capsys):
    data, runs, ran, argv, _ = setup
    for pid, host in ((os.getpid(), None), (_dead_pid(), "another-host")):  # live here; elsewhere: unknowable
        lock = _write_lock(runs, pid, host)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith(f"error: {runs} is in use by another experiments run "
                              f"(pid {pid} on {lock['host']}, started 2025-01-01 00:00:00")
        assert json.loads((runs / LOCK_FILE).read_text()) == lock  # untouched
        assert os.listdir(runs) == [LOCK_FILE] and ran == []  # nothing ran, nothing written
    (runs / LOCK_FILE).write_text("")  # a crash between creating and writing the lock
    assert main(argv) == 2
    assert "unreadable lock file; if no experiments run uses" in capsys.readouterr().err


def test_stale_lock_of_a_dead_process_is_taken_over(setup, capsys):
    data, runs, ran, argv, _ = setup
    pid = _dead_pid()
    _write_lock(runs, pid)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"taking over the lock of an experiments run that no longer runs (pid {pid} on" in out
    assert ran == list(VARIANTS)
    assert not (runs / LOCK_FILE).exists()  # released at the end


def test_lock_is_exclusive_while_held(tmp_path):
    with runs_dir_lock(str(tmp_path)) as path:
        owner = json.loads(open(path, encoding="utf-8").read())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(MonetKerasError, match="in use by another experiments run"):
            with runs_dir_lock(str(tmp_path)):
                pass
        assert os.path.exists(path)  # the refused attempt did not remove the holder's lock
    assert os.listdir(tmp_path) == []


def test_interrupted_batch_resumes_only_unfinished_variants(setup, capsys):
    data, runs, ran, argv, interrupt = setup
    interrupt.add("Us")
    assert main(argv) == 130  # Os finished, Us stopped mid-way, Os+Aug never started
    assert ran == ["Os", "Us"] and not (runs / LOCK_FILE).exists()
    assert json.loads((runs / "Us" / "result.json").read_text())["status"] == "running"
    assert ex.result_row(str(runs / "Us"))["status"] == "interrupted"

    interrupt.clear()
    ran.clear()
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert ran == ["Us", "Os+Aug"]
    assert "Os: finished before" in out and "Us: its previous run was interrupted; running it again" in out
    for name in ("Os", "Us", "Os_Aug"):
        assert json.loads((runs / name / "result.json").read_text())["status"] == "ok"

    # a SIGKILLed batch leaves its lock and a "running" variant; the next batch takes both over
    (runs / "Os_Aug" / "result.json").write_text(json.dumps({"variant": "Os+Aug", "status": "running"}))
    _write_lock(runs, _dead_pid())
    ran.clear()
    assert main(argv) == 0
    assert ran == ["Os+Aug"]
