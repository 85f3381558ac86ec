"""The thread policy of searches (uniembed.threads): small searches run their BLAS and FAISS math on
the calling thread, and what the user had is restored after, also when searches overlap."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from uniembed import threads
from uniembed.threads import SMALL_QUERY_BATCH, search_math


def blas_threads() -> list[int]:
    return sorted(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


@pytest.fixture
def two_blas_threads():
    """numpy's BLAS as it starts on a machine with 2 cores or more (2 threads or more). Not set
    by the test: OpenBLAS keeps a count set explicitly by the main thread against later settings
    from other threads, and the service's threads search in a process that never set one."""
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    if not blas_threads() or max(blas_threads()) < 2:
        pytest.skip("numpy's BLAS runs one thread here: nothing to limit")
    return None


def test_a_small_search_runs_blas_on_one_thread_and_restores_the_users_setting(two_blas_threads):
    before = blas_threads()
    with search_math(1):
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_a_search_for_many_queries_keeps_every_thread(two_blas_threads):
    before = blas_threads()
    with search_math(SMALL_QUERY_BATCH + 1):
        assert blas_threads() == before


OVERLAPPING = """
import json, threading
import numpy as np
from threadpoolctl import threadpool_info
from uniembed import threads
from uniembed.threads import search_math

def blas():
    return sorted(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

np.ones((2, 2)) @ np.ones((2, 2))
before = blas()
first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
seen = {}

def first():
    with search_math():
        first_in.set()
        second_in.wait(5)
    first_out.set()

def second():
    first_in.wait(5)
    with search_math():
        second_in.set()
        first_out.wait(5)
        seen["inside"] = blas()

workers = [threading.Thread(target=first), threading.Thread(target=second)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join(10)
print(json.dumps({"before": before, "inside": seen["inside"], "after": blas(), "holders": threads._holders}))
"""


def test_overlapping_searches_restore_the_setting_only_when_the_last_one_leaves(two_blas_threads):
    """The service's worker threads search at once: the first out must not undo the limit of the
    one still searching, and the last out restores what the user had. In a fresh process, as the
    service's is: OpenBLAS ignores settings from other threads once the main thread set one, which
    the earlier tests here did."""
    import json
    import subprocess
    import sys

    result = json.loads(
        subprocess.run(
            [sys.executable, "-c", OVERLAPPING], capture_output=True, text=True, check=True
        ).stdout
    )
    assert result["inside"] == [1] * len(result["before"])
    assert result["after"] == result["before"]
    assert result["holders"] == 0


def test_faiss_runs_on_one_thread_inside_and_gets_its_setting_back():
    faiss = pytest.importorskip("faiss")
    faiss.omp_set_num_threads(2)
    with search_math():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == 2


def test_the_limit_is_released_when_the_search_raises(two_blas_threads):
    before = blas_threads()
    with pytest.raises(ValueError):
        with search_math():
            raise ValueError("a bad query")
    assert blas_threads() == before
    assert threads._holders == 0
