"""malloc.tune_malloc: glibc's mallopt settings that keep freed memory for reuse."""

import ctypes
import sys

import pytest

from monet_keras.accel import malloc

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_tune_malloc_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    assert malloc.tune_malloc() is True
    monkeypatch.setenv(malloc.MALLOC_ENV, "default")
    assert malloc.tune_malloc() is False


def test_tune_malloc_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    assert malloc.tune_malloc() is False
