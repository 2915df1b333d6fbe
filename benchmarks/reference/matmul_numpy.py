"""numpy float32 matmul throughput, the same-run baseline of `engram bench` (optional; never a dependency).

Usage: python3 matmul_numpy.py '[[M, N, K], ...]' [rounds]
Prints one JSON object: numpy's version and BLAS, and per shape the best mean ms per call and GFLOP/s
(2*M*N*K / time) of A[M,K] @ B[K,N] with the same deterministic inputs engram's bench uses.
"""
import json
import sys
import time

import numpy as np


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        return cfg.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")
    except Exception:  # older numpy: no dict mode
        return "unknown"


def main():
    shapes = json.loads(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rows = []
    for m, n, k in shapes:
        a = (np.sin(np.arange(m * k, dtype=np.float64) * 0.7368) * 0.5).astype(np.float32).reshape(m, k)
        b = (np.sin(np.arange(k * n, dtype=np.float64) * 1.3137) * 0.5).astype(np.float32).reshape(k, n)
        flops = 2.0 * m * n * k
        calls = max(1, min(50, int(2e9 / flops)))
        a @ b
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(calls):
                a @ b
            best = min(best, (time.perf_counter() - t0) / calls)
        rows.append({"shape": [m, n, k], "ms": best * 1e3, "gflops": flops / best / 1e9})
    print(json.dumps({"numpy": np.__version__, "blas": blas_name(), "matmul": rows}))


main()
