"""One product at import takes OpenBLAS out of its slow start-up state.

OpenBLAS packs GEMM operands into a 32 MB scratch buffer that it maps once and never writes
beyond what a product needs. The explanation that fits every measurement: its GEMM kernels prefetch the next packed panel (the Haswell sgemm
kernel: `prefetcht1` on `next_b`), and on the last panel of a product that address lies in pages
no product has written yet. A prefetch of an unmapped page never faults, so the page stays
unmapped and every later call pays for the failed look-up again. Measured on an AMD EPYC (Zen 2
under KVM, OpenBLAS 0.3.31 Haswell kernels, one thread): (512x256) @ (256x64) float32 took 1.8 ms
in a fresh process and 0.5 ms once anything had written (or merely read) the pages 384-416 KB
into the buffer's mapping; float64 1.8 ms against 1.2 ms. One product whose packing reaches
further than small products do maps those pages for the rest of the process, for every dtype.
"""

import numpy as np

# (64 x 512) @ (512 x 1024): 67 MFLOP; about 8 ms of CPU on that machine, page faults included.
_SHAPE = (64, 512, 1024)


def warm_gemm_buffer():
    """Write OpenBLAS's packing buffer once with one float32 product (harmless for any other BLAS)."""
    m, k, n = _SHAPE
    np.ones((m, k), np.float32) @ np.ones((k, n), np.float32)
