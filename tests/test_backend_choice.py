"""Which Keras backend the kit runs on (monet_keras.accel.backends)."""

import os
import subprocess
import sys

import keras
import pytest

from monet_keras.accel import backends
from monet_keras.errors import MonetKerasError


@pytest.fixture
def machine(monkeypatch):
    """A machine with no KERAS_BACKEND set; ``machine(tpu=...)`` makes it a TPU VM or not."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)

    def make(tpu):
        monkeypatch.setattr(backends, "on_tpu_vm", lambda: tpu)
    return make


def test_auto_is_jax_on_a_tpu_vm_else_tensorflow(machine, monkeypatch):
    machine(tpu=True)
    assert backends.auto_backend() == "jax"
    machine(tpu=False)
    assert backends.auto_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the user's choice wins
    assert backends.auto_backend() == "jax"


def test_tpu_vm_is_seen_by_its_devices_or_environment(monkeypatch):
    monkeypatch.delenv("TPU_ACCELERATOR_TYPE", raising=False)
    monkeypatch.setattr(backends.glob, "glob", lambda pattern: ["/dev/accel0"] if "accel" in pattern else [])
    assert backends.on_tpu_vm()
    monkeypatch.setattr(backends.glob, "glob", lambda pattern: [])
    assert not backends.on_tpu_vm()
    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-8")
    assert backends.on_tpu_vm()


def test_once_keras_runs_only_its_backend_can_be_chosen(machine):
    machine(tpu=False)
    current = keras.backend.backend()
    other = {"tensorflow": "jax", "jax": "tensorflow"}[current]
    assert backends.choose_backend(current) == current
    with pytest.raises(MonetKerasError, match=f"Keras already runs on {current}, so it cannot switch to "
                                              f"{other}"):
        backends.choose_backend(other)
    with pytest.raises(MonetKerasError, match="bad parameter backend='torch'"):
        backends.choose_backend("torch")


def test_cli_backend_errors_are_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="torch")
    done = subprocess.run([sys.executable, "-m", "monet_keras", "train", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: KERAS_BACKEND='torch' is not supported: "
                                   "expected one of tensorflow, jax")
