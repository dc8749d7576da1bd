"""Which Keras backend the kit runs on, chosen before Keras is imported.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so every entry point (the CLI,
the notebook's first code cell) calls :func:`choose_backend` before anything imports Keras:

- ``KERAS_BACKEND``, when set, is respected;
- on a TPU VM, JAX: Kaggle's TPU image drives the TPU with JAX only (its TensorFlow is
  tensorflow-cpu, which has no TPU support);
- elsewhere TensorFlow, unless the user asks for JAX.

Under JAX, TensorFlow still reads the data (tf.data); it is kept off the GPUs so that it does not
take their memory from JAX.
"""

import glob
import importlib.util
import os
import sys

from monet_keras.errors import MonetKerasError

BACKENDS = ("tensorflow", "jax")
CHOICES = ("auto", *BACKENDS)


def on_tpu_vm():
    """True where this machine shows TPU devices (a TPU VM, as Kaggle's)."""
    return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")
                or os.environ.get("TPU_ACCELERATOR_TYPE"))


def auto_backend():
    """The backend ``"auto"`` means here (see the module docstring)."""
    requested = os.environ.get("KERAS_BACKEND")
    if requested:
        return requested
    if on_tpu_vm() and importlib.util.find_spec("jax") is not None:
        return "jax"
    return "tensorflow"


def choose_backend(requested="auto"):
    """Make Keras run on ``requested`` (``"auto"``, ``"tensorflow"`` or ``"jax"``); return the backend.

    Call it before Keras is imported. Once it is, only the backend it already runs on can be chosen.
    """
    if requested not in CHOICES:
        raise MonetKerasError(f"bad parameter backend={requested!r}: expected one of {', '.join(CHOICES)}")
    backend = auto_backend() if requested == "auto" else requested
    if backend not in BACKENDS:
        raise MonetKerasError(f"KERAS_BACKEND={backend!r} is not supported: "
                              f"expected one of {', '.join(BACKENDS)}")
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        raise MonetKerasError("the JAX backend needs jax: pip install jax "
                              "(jax[tpu] on a TPU VM, jax[cuda12] on a GPU)")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise MonetKerasError(f"Keras already runs on {current}, so it cannot switch to {backend}: "
                                  f"choose the backend before Keras is imported (restart the kernel, "
                                  f"or set KERAS_BACKEND)")
    else:
        os.environ["KERAS_BACKEND"] = backend
    if backend == "jax" and glob.glob("/dev/nvidia[0-9]*"):
        _keep_tensorflow_off_gpus()
    return backend


def _keep_tensorflow_off_gpus():
    import tensorflow as tf  # only on a GPU machine under JAX

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow had started its devices already; nothing to hide now
        pass
