"""Where we run: the devices, the device class and how a batch is spread over the devices.

On TensorFlow that is a tf.distribute strategy (TPUStrategy, MirroredStrategy over several GPUs,
or the default one-device strategy). On JAX it is :class:`JaxDevices`: Keras's
``DataParallel`` over every JAX device (the 8 cores of a TPU v5e-8), or one device.
"""

import contextlib

import keras

from monet_keras.accel import backends


class JaxDevices:
    """The JAX counterpart of a tf.distribute strategy: ``keras.distribution.DataParallel`` over
    ``devices`` (Keras device names, e.g. ``"tpu:0"``). Each device takes an equal share of the
    global batch; the train step sees the whole batch and the same update as one device results.
    Everything the run does (building, training, saving) happens inside :meth:`scope`."""

    def __init__(self, devices):
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)

    @contextlib.contextmanager
    def scope(self):
        if self.num_replicas_in_sync == 1:
            yield
            return
        with keras.distribution.DataParallel(devices=self.devices).scope():
            yield


def run_scope(strategy):
    """The context a whole run (build, train, save) happens in: on JAX the data-parallel scope,
    in which the trainer shards each batch; nothing for tf.distribute strategies, whose scope only
    the creation of variables needs (``build_gan`` enters it)."""
    return strategy.scope() if isinstance(strategy, JaxDevices) else contextlib.nullcontext()


def detect_tpu():
    """A connected TPUClusterResolver, or None when no TPU is reachable from TensorFlow.

    Tries the environment's TPU (TPU nodes), then ``tpu="local"`` (TPU VMs) where the machine
    shows TPU devices, so CPU and GPU machines are never reconfigured.
    """
    import tensorflow as tf

    resolver = None
    for args in ({}, {"tpu": "local"}) if backends.on_tpu_vm() else ({},):
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
    """How a run spreads over this machine: on JAX, DataParallel over all its devices; on
    TensorFlow, TPUStrategy on a TPU, MirroredStrategy on several GPUs, else the default strategy."""
    if keras.backend.backend() == "jax":
        strategy = JaxDevices(keras.distribution.list_devices())
    else:
        import tensorflow as tf

        resolver = detect_tpu()
        if resolver is not None:
            strategy = tf.distribute.TPUStrategy(resolver)
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            strategy = tf.distribute.MirroredStrategy()
        else:
            strategy = tf.distribute.get_strategy()
    if verbose:
        print(f"runs on {describe(strategy)}")
    return strategy


def current_strategy():
    """The strategy in effect when none is given: TensorFlow's current one, or on JAX the devices of
    the Keras distribution in effect (one device when there is none)."""
    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
        if distribution is None:
            return JaxDevices(keras.distribution.list_devices()[:1])
        return JaxDevices(distribution.device_mesh.devices.flatten().tolist())
    import tensorflow as tf

    return tf.distribute.get_strategy()


def device_class(strategy=None):
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: what the strategy runs on."""
    if isinstance(strategy, JaxDevices):
        return strategy.devices[0].split(":")[0].lower() if strategy.devices else "cpu"
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def describe(strategy):
    """E.g. "jax, 8 tpu device(s)" or "tensorflow, 1 cpu device(s)"."""
    return f"{keras.backend.backend()}, {strategy.num_replicas_in_sync} {device_class(strategy)} device(s)"
