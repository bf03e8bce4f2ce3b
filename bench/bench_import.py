"""`import mlscale_sdk` (and every module of it) in a fresh interpreter: wall time, and proof that no heavy library
came along.

python bench/bench_import.py [--repeat 7]
"""
import argparse
import statistics
import subprocess
import sys

CODE = """
import time, sys
t = time.perf_counter()
import mlscale_sdk
t1 = time.perf_counter()
import mlscale_sdk.config, mlscale_sdk.clusters, mlscale_sdk.data
import mlscale_sdk.train, mlscale_sdk.tracking, mlscale_sdk.cli
t2 = time.perf_counter()
heavy = [m for m in ("dask", "distributed", "xgboost", "mlflow", "feast", "torch", "papermill") if m in sys.modules]
print(t1 - t, t2 - t, ",".join(heavy))
"""
RAW = {"dask.distributed": "import distributed", "xgboost": "import xgboost", "mlflow": "import mlflow"}


def run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    pkg, allmods, heavy = [], [], ""
    for _ in range(a.repeat):
        out = run(CODE)
        pkg.append(float(out[0]))
        allmods.append(float(out[1]))
        heavy = out[2] if len(out) > 2 else ""
    p, m = statistics.median(pkg), statistics.median(allmods)
    print(
        f"import mlscale_sdk: {p * 1000:.0f} ms; all modules: {m * 1000:.0f} ms (target <= 500 ms); heavy libraries "
        f"imported: {heavy or 'none'}"
    )
    for name, stmt in RAW.items():
        t = statistics.median(
            float(run(f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)")[0])
            for _ in range(3)
        )
        print(f"  for scale: {stmt} takes {t:.2f}s -> mlscale_sdk (all modules) / {name} = {m / t:.2f}x")


if __name__ == "__main__":
    main()
