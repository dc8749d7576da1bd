"""Mixed precision: networks compute in the policy's dtype, losses and the saved generator are float32."""

import os

import keras
import numpy as np
import pytest
from kaggle_fixtures import write_kaggle_folder

from monet_keras.accel import cpu, policy
from monet_keras.config import tiny
from monet_keras.errors import MonetKerasError
from monet_keras.train import checkpoints
from monet_keras.train.training import build_gan, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_kaggle_folder(str(tmp_path_factory.mktemp("kaggle")), n_monet=4, n_photo=6, size=32)


@pytest.mark.parametrize("precision,compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_one_step_mixed_precision_run(folder, tmp_path, precision, compute):
    config = tiny("Os", data_dir=folder, out_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=1,
                  batch_size=2, precision=precision)
    gan = build_gan(config)
    # The networks compute in the policy's dtype, their variables are float32, the outputs float32.
    conv = gan.monet_generator.get_layer("down2_conv")
    assert conv.compute_dtype == compute and conv.kernel.dtype == "float32"
    assert gan.monet_generator.get_layer("to_image").compute_dtype == "float32"
    assert gan.monet_discriminator.get_layer("logits").compute_dtype == "float32"
    loss_scaled = isinstance(gan.optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == (precision == "mixed_float16")
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the policy did not leak

    result = train(config, verbose=0)
    assert all(np.isfinite(v) for v in result.history[0].values())
    saved = keras.saving.load_model(result.generator_path)
    assert all(layer.compute_dtype == "float32" for layer in saved.layers)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    y = saved(x, training=False)
    assert y.dtype == "float32" and np.all(np.isfinite(np.asarray(y)))
    # Same weights as the mixed-precision generator of the last checkpoint: outputs agree to its rounding.
    mixed = build_gan(config)
    checkpoints.restore_latest(mixed, os.path.join(result.run_dir, "checkpoints"))
    np.testing.assert_allclose(np.asarray(y), np.asarray(mixed.monet_generator(x, training=False)), atol=0.05)


def test_resolve_precision():
    assert policy.resolve_precision("auto", "cpu") == "float32"
    assert policy.resolve_precision("auto", "gpu") == "float32"
    assert policy.resolve_precision("auto", "tpu") == "mixed_bfloat16"
    assert policy.resolve_precision("mixed_float16", "tpu") == "mixed_float16"
    assert policy.resolve(None, "auto").precision == "float32"  # this test machine is a CPU


def test_native_bfloat16_from_cpu_flags_and_onednn_cap(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    flags = cpu.cpu_flags(str(cpuinfo))
    assert {"avx2", "avx512f", "avx512_bf16"} <= flags and "processor" not in flags
    assert cpu.cpu_flags(str(tmp_path / "missing")) == frozenset()
    assert cpu.native_bfloat16(flags, max_isa="")
    assert cpu.native_bfloat16(flags, max_isa="avx512_core_bf16")
    assert cpu.native_bfloat16(flags, max_isa="ALL")
    assert not cpu.native_bfloat16(flags, max_isa="AVX2")  # oneDNN held to an AVX2 machine's kernels
    assert not cpu.native_bfloat16(flags, max_isa="AVX512_CORE_VNNI")
    assert not cpu.native_bfloat16(frozenset({"avx2", "avx512f"}), max_isa="")
    assert cpu.native_bfloat16(frozenset({"amx_bf16"}), max_isa="AVX512_CORE_AMX")


def test_inference_precision(monkeypatch):
    monkeypatch.setattr(cpu, "native_bfloat16", lambda: True)
    assert policy.inference_precision("auto", "cpu", "tensorflow") == "bfloat16"
    assert policy.inference_precision("auto", backend="tensorflow") == "bfloat16"  # this machine: a CPU
    assert policy.inference_precision("auto", "gpu", "tensorflow") == "float32"
    assert policy.inference_precision("auto", "cpu", "jax") == "float32"
    assert policy.inference_precision("float32", "cpu", "tensorflow") == "float32"
    monkeypatch.setattr(cpu, "native_bfloat16", lambda: False)
    assert policy.inference_precision("auto", "cpu", "tensorflow") == "float32"
    assert policy.inference_precision("bfloat16", "gpu", "jax") == "bfloat16"  # asked for: kept
    with pytest.raises(MonetKerasError, match="bad parameter precision='mixed_bfloat16'"):
        policy.inference_precision("mixed_bfloat16")
