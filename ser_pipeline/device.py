"""One place that decides cpu vs cuda and how many threads a job uses, so every stage falls
back to the CPU the same way and never runs more threads than Snakemake gave it."""
from __future__ import annotations

import os

# Thread-count variables read by OpenMP (torch's intra-op pool), MKL and OpenBLAS (numpy,
# scipy) when they load; set for libraries loaded later and for child processes.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def resolve_device(requested: str | None = "auto") -> str:
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from ser_pipeline.errors import ConfigError
        raise ConfigError(f"device: '{requested}' was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return requested


def set_threads(n: int | None) -> dict:
    """Use exactly ``n`` threads in every thread pool of this process (the job's ``threads:``).

    Policy: a job given n cores runs n threads, never more, and no thread spins while it
    waits. Without a limit torch's intra-op pool, its inter-op pool and numpy's OpenBLAS
    each start one thread per core of the machine. And OpenMP threads (torch's intra-op
    pool) busy-wait at the end of every parallel operation for their teammates: on a
    shared node, where a teammate is often descheduled, that spinning took 74 % of the
    CPU time of the old LLD extractor run with 2 threads, which ran 5-16x slower than with
    1 (measured on the 2-core development machine under load). So, for n > 0:

    * torch intra-op threads = n (this also sets MKL's, which torch uses for matmul/FFT);
    * torch inter-op threads = n where still possible (torch allows it once, before any
      inter-op work; the value in effect is returned either way);
    * every BLAS/OpenMP library already loaded (numpy's OpenBLAS) limited to n through
      threadpoolctl, and OMP/MKL/OPENBLAS_NUM_THREADS set to n for those loaded later and
      for child processes;
    * OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep instead of spinning) unless the
      environment sets it: it takes effect only if torch is not imported yet, as in the
      CLI, which calls this first (with it the old LLD code ran 1.1-1.3x, not 5-16x,
      slower on 2 threads). OPENBLAS_CORETYPE is left alone (see the environment notes).

    Work made of many small operations should not split each operation across these
    threads; it should run one operation per thread and parallelise across independent
    pieces of work instead, with ``torch.get_num_threads()`` workers (features/lld.py).

    ``n`` None or 0 falls back to $SER_THREADS; if that is unset too nothing is changed
    (each library keeps its own default). Returns the settings in effect.
    """
    n = int(n or os.environ.get("SER_THREADS", 0) or 0)
    if n < 0:
        from ser_pipeline.errors import ConfigError
        raise ConfigError(f"threads must be >= 0, got {n}")
    if n > 0:
        for var in THREAD_ENV:
            os.environ[var] = str(n)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if n > 0:
        torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            try:
                torch.set_num_interop_threads(n)
            except RuntimeError:  # already started (or already set once): keep what is in effect
                pass
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - a dependency of scikit-learn, always present
            pass
        else:
            threadpool_limits(limits=n)
    return thread_settings()


def thread_settings() -> dict:
    """The thread settings now: torch intra-op and inter-op threads, OMP_WAIT_POLICY (in
    effect only if it was set before torch was imported), and each loaded BLAS/OpenMP
    library as threadpoolctl sees it (for logs and benchmarks)."""
    import torch

    out = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return out
    out["libraries"] = [{k: lib.get(k) for k in ("user_api", "internal_api", "num_threads", "prefix",
                                                  "architecture")} for lib in threadpool_info()]
    return out
