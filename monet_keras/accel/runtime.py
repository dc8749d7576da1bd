"""Where we run: distribution strategy, precision and seeds."""

import contextlib
import ctypes
import glob
import os
import sys

import keras
import tensorflow as tf


def detect_tpu():
    """A connected TPUClusterResolver, or None when no TPU is reachable.

    Tries the environment's TPU (TPU nodes), then ``tpu="local"`` (TPU VMs, as Kaggle's) where
    the machine shows TPU devices, so CPU and GPU machines are never reconfigured.
    """
    resolver = None
    local_tpu = bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")
                     or os.environ.get("TPU_ACCELERATOR_TYPE"))
    for args in ({}, {"tpu": "local"}) if local_tpu else ({},):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**args)
            break
        except (ValueError, KeyError, RuntimeError, tf.errors.OpError):
            continue
    if resolver is None:
        return None
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None
    return resolver


def pick_strategy(verbose=True):
    """TPUStrategy on a TPU, MirroredStrategy on several GPUs, else the default strategy."""
    resolver = detect_tpu()
    if resolver is not None:
        strategy = tf.distribute.TPUStrategy(resolver)
        kind = f"TPU ({strategy.num_replicas_in_sync} cores)"
    else:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
            kind = f"{len(gpus)} GPUs (MirroredStrategy)"
        else:
            strategy = tf.distribute.get_strategy()
            kind = "1 GPU" if gpus else "CPU"
    if verbose:
        print(f"strategy: {kind}, {strategy.num_replicas_in_sync} replica(s)")
    return strategy


def device_class(strategy=None):
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: what the strategy runs on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def resolve_precision(precision, strategy=None):
    """``"auto"`` -> ``mixed_bfloat16`` on TPU, ``float32`` elsewhere; else the named policy.

    CPU stays float32: on the project's 2-core AVX512-BF16 CPU mixed_bfloat16 was not clearly
    faster (1.06-1.14x the float32 step speed at 256 px, within the noise of a shared machine; see
    benchmarks/README.md). GPU stays float32 until benchmarks/gpu_check.sh has measured mixed
    precision there.
    """
    if precision == "auto":
        return "mixed_bfloat16" if device_class(strategy) == "tpu" else "float32"
    return precision


@contextlib.contextmanager
def dtype_policy(policy):
    """Keras layers created inside the block use the dtype policy ``policy`` (e.g.
    ``"mixed_bfloat16"``: bfloat16 compute, float32 variables); the previous global policy is
    restored on exit, so nothing outlives the block."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


# glibc's mallopt parameters (malloc.h) and the values tune_malloc sets.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOPT_SETTINGS = (
    (_M_MMAP_THRESHOLD, 32 << 20),  # blocks under 32 MiB come from the heap, not from fresh mmaps
    (_M_TRIM_THRESHOLD, 2 ** 31 - 1),  # never give freed heap memory back to the kernel
    (_M_TOP_PAD, 64 << 20),  # nor free a thread's 64 MiB heap once it is empty
)
MALLOC_ENV = "MONET_KERAS_MALLOC"


def tune_malloc():
    """Make glibc keep freed memory for reuse instead of returning it to the kernel; True if applied.

    A 256-px CycleGAN step allocates and frees about 1.2 GB of tensors. With glibc's defaults
    TensorFlow's threads get that memory as fresh pages every step: ~300,000 page faults and
    0.6 s of kernel time per 2.6-s step on the 2-core CPU. With these settings the pages stay
    mapped (the same peak memory) and the step is ~1.15x faster (benchmarks/README.md). The
    settings are process-wide and take effect from the next allocation, so calling this after
    TensorFlow started is fine. No-op (False) off glibc Linux, or with ``MONET_KERAS_MALLOC=default``.
    """
    if os.environ.get(MALLOC_ENV, "") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 or ignores mallopt)
        return False
    return all([mallopt(parameter, value) == 1 for parameter, value in _MALLOPT_SETTINGS])


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow (``keras.utils.set_random_seed``)."""
    keras.utils.set_random_seed(int(seed))

