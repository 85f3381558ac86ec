"""One policy for the thread pools uniembed drives, so that a text query does not fight itself.

A text query runs two kinds of work back to back in one process: the encoder (torch's OpenMP pool,
or ONNX Runtime's / OpenVINO's own pools) and the vector math of the search (numpy's BLAS, FAISS's
OpenMP). Each pool's workers spin for a while after their work is done, waiting for more. On a
machine with few cores, the BLAS workers of a search product then spin on the cores the encoder
needs for the next query, and the other way round: measured on 2 cores, a dense search by text
took 24-110 ms where encoding the query alone took 9 ms and the vector search 0.1 ms (issue 32).

The policy, decided once here and applied wherever the library searches (every collection home,
so the CLI and the service too):

- The vector math of a search for a few queries runs on the calling thread alone (`search_math`):
  one query against a collection is a matrix-vector product, bound by memory, not by cores, so
  extra BLAS or OpenMP workers buy nothing there and cost the next encode its cores.
- Work on many queries at once (an evaluation, a batch of queries) keeps every pool's threads: it
  is a matrix-matrix product that threads do speed up, and spinning is amortised over it.
- Encoders keep their own pools (`threads=` on `load` sets them); the library never shrinks them.

numpy's BLAS setting is process-wide. Concurrent searches (the service's worker threads) share one
limit, counted: the first to enter sets it, the last to leave restores what the user had, so the
user's own numpy code after a search runs as it did before. One gap, seen with OpenBLAS 0.3.31:
once the main thread has set BLAS threads explicitly (threadpoolctl, or a search run on the main
thread), settings made later by other threads do not take; a process that searches from worker
threads (the service) should not search from its main thread too.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

# a search for at most this many queries is "small": its products are memory-bound (measured: one
# query against 1,500 x 384 vectors takes 0.1 ms on one thread)
SMALL_QUERY_BATCH = 16

_lock = threading.Lock()
_holders = 0  # searches inside search_math now
_limit = None  # threadpoolctl's handle restoring the user's settings, while _holders > 0
_controller = None
_modules_seen = -1  # len(sys.modules) when _controller scanned the loaded libraries


def _thread_pools():
    """A threadpoolctl controller over the libraries loaded now; scanned again (2 ms) only when
    modules were imported since (FAISS brings its own OpenBLAS and OpenMP when first imported)."""
    global _controller, _modules_seen
    if _controller is None or len(sys.modules) != _modules_seen:
        from threadpoolctl import ThreadpoolController

        _controller, _modules_seen = ThreadpoolController(), len(sys.modules)
    return _controller


@contextmanager
def search_math(n_queries: int = 1):
    """Inside: BLAS and FAISS math on the calling thread only, when the search is small (at most
    SMALL_QUERY_BATCH queries). Never wrap an encoder call in it."""
    global _holders, _limit
    if n_queries > SMALL_QUERY_BATCH:
        yield
        return
    with _lock:
        if _holders == 0:
            _limit = _thread_pools().limit(limits=1, user_api="blas")
        _holders += 1
    faiss_threads = _set_faiss_threads(1)
    try:
        yield
    finally:
        _set_faiss_threads(faiss_threads)
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limit.restore_original_limits()
                _limit = None


def _set_faiss_threads(threads: int | None) -> int | None:
    """Set FAISS's OpenMP threads for the calling thread (an OpenMP setting is per thread), when
    FAISS is loaded; returns the setting before. Set through FAISS, not threadpoolctl: an OpenMP
    limit by threadpoolctl would reach every OpenMP runtime, torch's pool included."""
    faiss = sys.modules.get("faiss")
    if faiss is None or threads is None:
        return None
    before = faiss.omp_get_max_threads()
    if before != threads:
        faiss.omp_set_num_threads(threads)
    return before
