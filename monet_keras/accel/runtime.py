"""Where we run: the device class and its tf.distribute strategy."""

import glob
import os

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


