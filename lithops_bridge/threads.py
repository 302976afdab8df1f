"""How many threads a call's numeric libraries may start: the machine's CPUs shared by the pool.

Each BLAS/OpenMP library sizes its thread pool to every CPU of the machine when its
module loads. A pool of ``n`` worker processes, each loading NumPy, then runs ``n``
times as many compute threads as there are CPUs: on a busy machine the threads spin
against each other and a call that needs 0.2 s of CPU takes ten times that. joblib's
``loky`` backend and Ray do the same as here: a worker's inner threads are capped at
``cpus // workers`` (at least one). A variable already set (by the user, the VM's
environment or the job's ``extra_env``) wins: the caps only fill the gaps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# the variables the common numeric libraries read at load (the set loky caps)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_caps(processes: int, already: Mapping[str, str] | None = None, cpus: int | None = None) -> dict[str, str]:
    """The thread variables a worker of a ``processes``-process pool gets: those not in ``already``
    (default: this process's environment), each ``cpus // processes``, at least 1."""
    present = os.environ if already is None else already
    share = max(1, (cpus or usable_cpus()) // max(1, int(processes)))
    return {name: str(share) for name in THREAD_VARS if name not in present}
