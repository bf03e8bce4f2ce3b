"""Per-call `mlflow.log_metric` vs mlscale's batched `Run.log_metric`, on a fresh store.

    python bench/bench_logging.py            # 10,000 points each (the per-call half takes ~30-60 s)
    python bench/bench_logging.py --n 2000   # quicker
    python bench/bench_logging.py --tracking-uri http://127.0.0.1:5000   # against a tracking server

Both halves log the same N points (one metric, steps 0..N-1) into their own run of the same
store; the batched time includes the final flush. Set-up (store and schema creation, imports) is
not timed.
"""
import argparse
import os
import sys
import tempfile
import time


def bench(n: int, tracking_uri: str | None = None) -> dict:
    "Time N per-call `mlflow.log_metric` calls and N buffered `Run.log_metric` calls; return the figures."
    with tempfile.TemporaryDirectory() as home:
        os.environ["MLSCALE_HOME"] = home
        if tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        else:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        import mlflow

        from mlscale_sdk import tracking
        from mlscale_sdk.config import settings
        settings.cache_clear()
        tracking.reset_cache()
        uri = tracking.configure()
        c = tracking.client()

        with tracking.start_run("per-call") as naive_run:
            t0 = time.perf_counter()
            for i in range(n):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            naive = time.perf_counter() - t0

        with tracking.start_run("batched") as run:
            t0 = time.perf_counter()
            for i in range(n):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
            run.flush()
            batched = time.perf_counter() - t0

        got = (len(c.get_metric_history(naive_run.run_id, "loss")), len(c.get_metric_history(run.run_id, "loss")))
        assert got == (n, n), f"expected {n} points in each run, found {got}"
        tracking.reset_cache()
        settings.cache_clear()
        return dict(n=n, uri=uri, naive_s=naive, batched_s=batched, batches=run.batches, ratio=batched / naive)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="metric points per half (default 10,000)")
    ap.add_argument(
        "--tracking-uri", default=None, help="a tracking server to use instead of a fresh embedded SQLite store"
    )
    ap.add_argument("--target", type=float, default=0.1, help="ratio batched/per-call to meet (default 0.1)")
    ap.add_argument("--check", action="store_true", help="exit with status 1 when the target is missed")
    a = ap.parse_args(argv)
    r = bench(a.n, a.tracking_uri)
    n = r["n"]
    print(f"store: {r['uri']}")
    print(
        f"per-call mlflow.log_metric: {n:>7,} points in {r['naive_s']:8.2f} s  ({1e3 * r['naive_s'] / n:.3f} ms/point)"
    )
    print(
        f"batched Run.log_metric:     {n:>7,} points in {r['batched_s']:8.2f} s  ({1e3 * r['batched_s'] / n:.3f} "
        f"ms/point, {r['batches']} log_batch calls)"
    )
    ok = r["ratio"] <= a.target
    print(f"batched/per-call = {r['ratio']:.3f}x (target <= {a.target:g}x): {'OK' if ok else 'MISSED'}")
    return 0 if ok or not a.check else 1


if __name__ == "__main__":
    sys.exit(main())
