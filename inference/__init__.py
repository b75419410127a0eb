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

__version__ = "0.1.0"
