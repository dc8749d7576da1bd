"""What this CPU's instruction set offers the speed policy: native bfloat16 dot products.

TensorFlow's CPU kernels (oneDNN) choose their code by the instruction set at run time, up to
``ONEDNN_MAX_CPU_ISA`` when that is set. ``ONEDNN_MAX_CPU_ISA=AVX2`` makes an AVX-512 machine run
the kernels an AVX2 machine runs; benchmarks/README.md measures both kinds of CPU that way.
"""

import os

# /proc/cpuinfo flags of bfloat16 dot-product instructions (AVX512_BF16; AMX on newer Xeons).
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Parts of the ONEDNN_MAX_CPU_ISA names that still allow those instructions (AVX512_CORE_BF16
# and every ISA above it), or lift the cap.
_BFLOAT16_ISA_NAMES = ("BF16", "FP16", "AMX", "AVX10", "ALL", "DEFAULT")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The instruction-set flags of the first CPU in ``cpuinfo`` (empty where there is none, e.g.
    not on Linux)."""
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(flags=None, max_isa=None):
    """Whether oneDNN runs bfloat16 matmuls and convolutions in hardware here: the CPU has the
    instructions (``flags``, default :func:`cpu_flags`) and ``max_isa`` (default
    ``$ONEDNN_MAX_CPU_ISA``) does not hold oneDNN below them. Without them bfloat16 is emulated,
    and slower than float32."""
    flags = cpu_flags() if flags is None else flags
    max_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if max_isa is None else max_isa
    capped = bool(max_isa) and not any(name in max_isa.upper() for name in _BFLOAT16_ISA_NAMES)
    return bool(flags & BFLOAT16_FLAGS) and not capped
