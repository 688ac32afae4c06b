"""What this machine's CPU offers the kernels: its instruction-set flags, read from Linux's /proc/cpuinfo.

The same model's speed differs by machine, and bfloat16 most of all: with AVX-512 BF16 or
AMX, TensorFlow's and PyTorch's bfloat16 convolutions run several times faster than float32;
without them every backend emulates bfloat16 and runs it several times slower
(docs/performance.md). :func:`cpu_features` names what matters for that, so that
benchmark results and ``predrnn train``'s notes can say which kind of machine they saw.
"""

# The flags worth reporting, as /proc/cpuinfo spells them, and as people write them.
REPORTED_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512 BF16",
    "amx_bf16": "AMX-BF16",
}
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The set of the first processor's flags in ``path``, or None where it cannot be read
    (not Linux) or holds no x86 ``flags`` line (Arm's ``Features`` are not read)."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_features(flags=None):
    """The reported flags the CPU has, in :data:`REPORTED_FLAGS`' order (e.g. ``["AVX2",
    "AVX-512"]``), or None when the flags are unknown (``flags``: :func:`cpu_flags`' set)."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    return [name for flag, name in REPORTED_FLAGS.items() if flag in flags]


def bfloat16_support(flags=None):
    """``"native"`` (AVX-512 BF16 or AMX-BF16), ``"emulated"`` (an x86 CPU without them), or
    ``"unknown"`` (no x86 flags to read)."""
    flags = cpu_flags() if flags is None else flags
    if flags is None or "avx" not in flags:
        return "unknown"
    return "native" if any(flag in flags for flag in BFLOAT16_FLAGS) else "emulated"
