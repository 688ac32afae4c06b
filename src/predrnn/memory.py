"""Returning the memory a compilation freed to the system (glibc's ``malloc_trim``).

Compiling a training or rollout step (TensorFlow's traced graph and its XLA kernels, JAX's
XLA executables) allocates and frees hundreds of MB in small blocks. glibc keeps the freed
blocks in its heap, resident, between the blocks that stay live, and the step's buffers
are then allocated beside them: a process's peak is the compilation's leftovers plus the
step. ``malloc_trim(0)`` hands the free pages back. At 4x64/batch 8 on this project's CPU
(benchmarks/README.md, "Memory (session 12)"): JAX's peak fell from 1602 to 1396 MB with a
trim after each compilation, TensorFlow's later steps' from 2040 to 1906 MB with one after
the first step (``benchmarks/peak_memory.py 20 3``).

The models use this on their own (``VideoPredictor.make_train_function`` and its test and
predict siblings); nothing here changes a result. Where there is no glibc (macOS,
Windows, musl) it does nothing.
"""

import ctypes
import functools
import sys

JAX_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's C library
    except OSError:
        return None


def release_freed_memory():
    """Return the C heap's free pages to the system (``malloc_trim(0)``); a few ms.

    Returns whether it could (glibc), not whether anything was freed.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def released_after_first_call(function):
    """``function``, calling :func:`release_freed_memory` after its first call: for a
    Keras ``train_function`` / ``test_function`` / ``predict_function`` on TensorFlow, whose
    first call traces the step and compiles its XLA kernels. Wrapping twice wraps once."""
    if function is None or getattr(function, "_releases_after_first_call", False):
        return function
    first = [True]

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        if first[0]:
            first[0] = False
            release_freed_memory()
        return result

    wrapped._releases_after_first_call = True
    return wrapped


_jax_listener_registered = False


def release_after_jax_compiles():
    """From now on, in this process, call :func:`release_freed_memory` after each JAX
    backend compilation (a ``jax.monitoring`` listener, registered once): after JAX compiles
    a step, before its first run. Every compilation of the process, the user's included,
    then costs a few ms more (0.14 s for the 19 compilations of a 4x64 training run,
    timed with a throwaway script)."""
    global _jax_listener_registered
    if _jax_listener_registered or _malloc_trim() is None:
        return
    import jax

    def listener(event, duration_secs, **kwargs):
        if event == JAX_BACKEND_COMPILE_EVENT:
            release_freed_memory()

    jax.monitoring.register_event_duration_secs_listener(listener)
    _jax_listener_registered = True
