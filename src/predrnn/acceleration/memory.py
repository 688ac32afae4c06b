"""Returning the memory a compilation freed to the system (glibc's ``malloc_trim``).

Compiling a training or rollout step (TensorFlow's traced graph and its XLA kernels, JAX's
XLA executables) allocates and frees hundreds of MB in small blocks. glibc keeps the freed
blocks in its heap, resident, between the blocks that stay live, and the step's buffers
are then allocated beside them: a process's peak is the compilation's leftovers plus the
step. ``malloc_trim(0)`` hands the free pages back: a trim after each compilation lowers
JAX's peak, one after the first step lowers TensorFlow's later steps' (by about 10% at
4x64/batch 8 on a CPU; ``benchmarks/peak_memory.py 20 3``, docs/performance.md).

The models use this on their own (:func:`release_after_compiling`, from
``VideoPredictor.make_train_function`` and its test and predict siblings); nothing here changes a result. Where there is no glibc (macOS,
Windows, musl) it does nothing.

The ``predrnn`` command also limits glibc to two malloc arenas (:func:`limit_malloc_arenas`):
TensorFlow's and XLA's threads otherwise each get an arena of their own (up to eight per
core), whose freed blocks stay resident apart from the others'.
"""

import ctypes
import functools
import os
import sys

JAX_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
MALLOC_ARENAS = 2  # what the predrnn command limits glibc's malloc arenas to
_M_ARENA_MAX = -8  # glibc's malloc.h: mallopt's parameter for the arena limit


def _libc_function(name):
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name, None)  # the process's C library
    except OSError:
        return None


@functools.cache
def _malloc_trim():
    return _libc_function("malloc_trim")


@functools.cache
def _mallopt():
    return _libc_function("mallopt")


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


def limit_malloc_arenas(arenas=MALLOC_ARENAS):
    """Limit glibc's malloc to ``arenas`` arenas, in this process (``mallopt``) and in the
    processes it starts (``MALLOC_ARENA_MAX`` in the environment), unless the environment
    already sets ``MALLOC_ARENA_MAX``, which glibc then read when this process started.

    glibc gives each thread that allocates an arena of its own, up to eight per core; a
    block freed in one stays resident until that arena reuses it. TensorFlow's and XLA's
    thread pools spread their allocations over many arenas: with two, TensorFlow's training
    working set is smaller at the same step time (docs/performance.md). The ``predrnn`` command
    calls this before it imports a backend; from Python, call it before importing one (or
    set ``MALLOC_ARENA_MAX=2`` in the environment). Arenas made before the call stay.
    Returns whether the limit was set here (False where the environment sets it, or
    without glibc).
    """
    if not isinstance(arenas, int) or isinstance(arenas, bool) or arenas < 1:
        raise ValueError(f"limit_malloc_arenas needs a positive number of arenas. Received: {arenas!r}")
    mallopt = _mallopt()
    if "MALLOC_ARENA_MAX" in os.environ or mallopt is None:
        return False
    if not mallopt(_M_ARENA_MAX, arenas):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    return True


def use_the_command_allocators():
    """The allocators the ``predrnn`` command runs with, in this process and the processes it
    starts; called before a backend starts.

    TensorFlow's BFC allocator on the CPU (``TF_CPU_ALLOCATOR_USE_BFC=1`` unless the
    environment sets it; ``0`` keeps the system allocator): measured a lower peak, far less
    system time and equal or slightly faster steps (docs/performance.md); it
    is read when TensorFlow starts. And glibc's two malloc arenas
    (:func:`limit_malloc_arenas`).
    """
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")
    limit_malloc_arenas()


def release_after_compiling(function):
    """``function`` (a Keras train, test or predict function) with the heap released after
    its compilation: on TensorFlow after its first call (which traces and compiles), on JAX
    after each XLA compilation (:func:`release_after_jax_compiles`)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        release_after_jax_compiles()
    elif backend == "tensorflow":
        return released_after_first_call(function)
    return function
