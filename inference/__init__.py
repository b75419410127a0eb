"""Everything an IVADAS endpoint needs: backbone runner, PatchCore / SoftPatch scoring, bundles.

Imports only numpy, onnxruntime, faiss, Pillow and scipy so that the endpoint image stays slim.
"""

import os

# Measured on the serving path: idle OpenMP (faiss) and OpenBLAS (numpy) workers busy-wait between
# calls and steal the cores ONNX Runtime needs next, adding ~50 % to single-image latency. Passive
# waiting and single-threaded BLAS for the small numpy products remove that; set before the first
# numpy/faiss import, and any value the operator sets wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")



def _keep_freed_memory_for_reuse() -> None:
    """Serving allocates the same few-MB feature arrays on every request. glibc returns such blocks
    to the kernel on free (mmap threshold, heap trimming), so each request page-faults them back
    in: measured at 5 ms of an 8 ms embedding step. Keeping them in the heap removes that."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


_keep_freed_memory_for_reuse()

__version__ = "0.1.0"
