"""Matrix products that give the same bits whatever the batch shape or thread count (torch on CPU).

batching.py makes a text's padded length a function of the text alone. That leaves the batch's row
count: with several threads, MKL's sgemm splits a small product differently from a large one (it
cuts the summation over the inner dimension between threads), so the same row can come out 1e-7
apart in a batch of 2 and a batch of 300 (measured on the 2-layer test model; the default model's
shapes happened not to trigger it). MKL's strict Conditional Numerical Reproducibility mode
(MKL_CBWR=AUTO,STRICT) fixes the summation order for any thread count and shape; the README's
encoding tables are measured with it on, so `import uniembed` asks for it.

MKL reads MKL_CBWR once, at its first call: a process that ran a torch matrix product before
importing uniembed keeps the mode it started with, and `strict_blas()` reports that. Builds without
MKL (ARM wheels use OpenBLAS/ACL) and GPUs make no such promise: vectors there agree to float32
rounding across batch shapes, not bit for bit.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

STRICT_MODE = "AUTO,STRICT"
_CBWR_ALL = -1  # mkl_cbwr_get(MKL_CBWR_ALL): the branch and the STRICT flag
_CBWR_STRICT = 0x10000

log = logging.getLogger(__name__)


def request_strict_blas() -> None:
    """Ask MKL for strict reproducibility, unless the user chose a mode (MKL_CBWR set already).
    Works only before MKL's first call in this process, which is why `import uniembed` does it."""
    os.environ.setdefault("MKL_CBWR", STRICT_MODE)


@lru_cache(maxsize=1)
def strict_blas() -> bool | None:
    """True when torch's MKL runs in strict reproducible mode, False when it does not (it started
    before `import uniembed`, or MKL_CBWR chose another mode), None when there is no MKL to ask
    (torch not loaded or built without it)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.backends.mkl.is_available():
        return None
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get_mode = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):  # another platform's library name, or MKL's symbols hidden
        return None
    get_mode.restype, get_mode.argtypes = ctypes.c_int, [ctypes.c_int]
    torch.ones(2, 2) @ torch.ones(2, 2)  # MKL settles its mode at its first call
    return bool(get_mode(_CBWR_ALL) & _CBWR_STRICT)


def warn_unless_strict() -> None:
    """Log once why vectors may differ by float32 rounding across batch shapes in this process."""
    if strict_blas() is False:
        log.warning(
            "MKL is not in strict reproducible mode (it ran before `import uniembed`, or MKL_CBWR chose "
            "another mode): a text's vector can differ by float32 rounding (~1e-7) between batch sizes. "
            "Import uniembed before any torch computation, or start the process with MKL_CBWR=%s.",
            STRICT_MODE,
        )
