"""The speed policy: which device-specific tricks a run uses, decided once from where it runs.

The networks, the CycleGAN and the optimizers take plain switches (``small_map_matmul``,
``fused_step``, the optimizer class); :func:`resolve` sets them from the device class and the
replica count, by measurement where there is one (benchmarks/README.md):

- ``small_map_matmul`` (:mod:`.smallconv`): TensorFlow on CPU only, where it was measured faster;
  unmeasured on GPU and TPU, where cuDNN and XLA may not need it.
- ``fused_step`` (:class:`~monet_keras.model.cyclegan.CycleGAN`): GPU and TPU, where bigger
  calls fill the device; on CPU it measured no faster.
- ``fused_adam`` (:mod:`.fused_adam`, a TensorFlow kernel): one replica, CPU or GPU (its kernel
  cannot address one replica's copy of a mirrored variable; on TPU, and on JAX everywhere, XLA
  fuses Keras's update anyway).
- ``tune_malloc`` (:mod:`.malloc`): CPU only (either backend), where the step's 1.2 GB of tensors per 256-px
  step go through glibc; ``MONET_KERAS_MALLOC=default`` turns it off.
- ``precision``: ``"auto"`` means mixed bfloat16 on TPU, float32 elsewhere.

Inference (the images.zip writer) has its own choice, :func:`inference_precision`: bfloat16 on
a CPU with bfloat16 instructions, where the generator's forward pass is clearly faster that way.
"""

import contextlib
import dataclasses

import keras

from monet_keras.accel import cpu, runtime
from monet_keras.config import INFERENCE_PRECISIONS
from monet_keras.errors import MonetKerasError


@dataclasses.dataclass(frozen=True)
class SpeedPolicy:
    backend: str  # "tensorflow" or "jax"
    device: str  # "cpu", "gpu" or "tpu"
    replicas: int
    precision: str  # a Keras dtype policy name
    small_map_matmul: bool
    fused_step: bool
    fused_adam: bool
    tune_malloc: bool

    def describe(self):
        tricks = [name for name in ("small_map_matmul", "fused_step", "fused_adam", "tune_malloc")
                  if getattr(self, name)]
        return (f"{self.backend}, {self.replicas} {self.device} device(s), {self.precision}; "
                f"speed-ups: {', '.join(tricks) or 'none'}")


def resolve(strategy=None, precision="auto"):
    """The :class:`SpeedPolicy` for ``strategy`` (default: :func:`runtime.current_strategy`) on
    the Keras backend in use."""
    strategy = strategy or runtime.current_strategy()
    return policy_for(runtime.device_class(strategy), strategy.num_replicas_in_sync, precision,
                      keras.backend.backend())


def policy_for(device, replicas=1, precision="auto", backend="tensorflow"):
    """The :class:`SpeedPolicy` of ``replicas`` devices of class ``device`` on ``backend`` (see the
    module docstring)."""
    tensorflow = backend == "tensorflow"
    return SpeedPolicy(
        backend=backend,
        device=device,
        replicas=replicas,
        precision=resolve_precision(precision, device),
        small_map_matmul=tensorflow and device == "cpu",
        fused_step=device != "cpu",
        fused_adam=tensorflow and replicas == 1 and device != "tpu",
        tune_malloc=device == "cpu",
    )


def resolve_precision(precision, device):
    """``"auto"`` -> ``mixed_bfloat16`` on ``device`` ``"tpu"``, ``float32`` elsewhere; else the named policy.

    CPU stays float32: on the project's 2-core AVX512-BF16 CPU mixed_bfloat16 was not clearly
    faster (1.06-1.14x the float32 step speed at 256 px, within the noise of a shared machine; see
    benchmarks/README.md). GPU stays float32 until benchmarks/gpu_check.sh has measured mixed
    precision there.
    """
    if precision == "auto":
        return "mixed_bfloat16" if device == "tpu" else "float32"
    return precision


def inference_precision(precision="auto", device=None, backend=None):
    """The dtype a generator computes in when it translates photos: ``"auto"`` -> ``"bfloat16"`` on
    TensorFlow on a CPU with bfloat16 instructions (:func:`cpu.native_bfloat16`), where the
    forward pass measured clearly faster, with pixels within a level or two of float32's
    (benchmarks/README.md); ``"float32"`` elsewhere (emulated bfloat16 is slower; GPU, TPU and
    JAX unmeasured). ``device`` and ``backend`` default to where this process runs."""
    if precision not in INFERENCE_PRECISIONS:
        raise MonetKerasError(f"bad parameter precision={precision!r}: expected one of "
                              f"{', '.join(INFERENCE_PRECISIONS)}")
    if precision != "auto":
        return precision
    backend = backend or keras.backend.backend()
    device = device or runtime.device_class(runtime.current_strategy())
    return "bfloat16" if backend == "tensorflow" and device == "cpu" and cpu.native_bfloat16() else "float32"


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
