"""Benchmark: mlscale's `train_xgboost` against the same training written by hand with `xgboost.dask`.

Both run on ONE cluster and the same persisted data, with the same split, DaskQuantileDMatrix, parameters
and number of rounds (no early stopping in either), each repeated and reported as the median. Also times
`predict` (xgboost.dask.inplace_predict) against `xgboost.dask.predict`.

    python bench/bench_train.py                  # 1,000,000 rows, 2 workers
    python bench/bench_train.py --rows 200000 --rounds 50 --repeats 5 --json out.json
"""
import argparse
import json
import statistics
import time


def raw_train(client, frame, features, target, params, rounds, seed):
    "The hand-written equivalent of train_xgboost(..., early_stopping_rounds=None)."
    import xgboost as xgb
    import xgboost.dask
    tr, ev = frame.random_split([0.8, 0.2], random_state=seed)
    with client.as_current():  # xgboost.dask looks the client up itself
        dtrain = xgb.dask.DaskQuantileDMatrix(client, tr[features], tr[target], enable_categorical=True)
        deval = xgb.dask.DaskQuantileDMatrix(client, ev[features], ev[target], ref=dtrain, enable_categorical=True)
        return xgb.dask.train(
            client, params, dtrain, num_boost_round=rounds, evals=[(deval, "eval")], verbose_eval=False
        )


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="transactions to generate")
    ap.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions per variant (median reported)")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers (one thread each)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    import numpy as np
    import xgboost as xgb
    import xgboost.dask
    from sklearn.metrics import roc_auc_score

    from mlscale_sdk.clusters import start_cluster
    from mlscale_sdk.data import basic_features, make_transactions
    from mlscale_sdk.train import predict, train_xgboost

    target, seed = "is_fraud", 0
    params = {"tree_method": "hist", "device": "cpu", "seed": seed, "objective": "binary:logistic",
              "eval_metric": ["logloss", "auc"]}
    res = {"rows": args.rows, "rounds": args.rounds, "repeats": args.repeats, "workers": args.workers,
           "xgboost": xgb.__version__}
    with start_cluster("local", n_workers=args.workers, threads_per_worker=1, register=False) as h:
        client = h.client
        h.wait_for_workers(args.workers)
        t = time.perf_counter()
        frame, features = basic_features(make_transactions(args.rows, seed=seed))
        frame = client.persist(frame)
        n = client.compute(frame.map_partitions(len).sum()).result()
        res["data_seconds"] = time.perf_counter() - t
        print(f"data: {n:,} rows, {frame.npartitions} partitions, {len(features)} features, "
              f"generated + features + persisted in {res['data_seconds']:.1f}s", flush=True)

        # warm-up: imports on the workers, first tracker start
        raw_train(client, frame.partitions[:1], features, target, params, 2, seed)

        sdk = lambda progress: train_xgboost(
            h,
            frame,
            target=target,
            features=features,
            num_boost_round=args.rounds,
            eval_fraction=0.2,
            early_stopping_rounds=None,
            seed=seed,
            progress=progress,
        )
        variants = {
            "raw xgboost.dask": lambda: raw_train(client, frame, features, target, params, args.rounds, seed),
            "mlscale train_xgboost": lambda: sdk(False),
            "mlscale train_xgboost (progress bar)": lambda: sdk(True),
        }
        times, outs = {k: [] for k in variants}, {}
        for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits every variant alike
            for name, fn in variants.items():
                t = time.perf_counter()
                outs[name] = fn()
                times[name].append(time.perf_counter() - t)
        raw_auc = outs["raw xgboost.dask"]["history"]["eval"]["auc"][-1]
        sdk_auc = outs["mlscale train_xgboost"].metrics["auc"]
        res["train"] = {k: {"median_s": statistics.median(v), "runs_s": v} for k, v in times.items()}
        res["eval_auc"] = {"raw": raw_auc, "sdk": sdk_auc}
        base = statistics.median(times["raw xgboost.dask"])
        print(f"\ntraining, {args.rounds} rounds, median of {args.repeats}:")
        for k, v in times.items():
            m = statistics.median(v)
            print(f"  {k:38s} {m:7.2f}s   ratio to raw {m / base:5.2f}   runs: {', '.join(f'{x:.2f}' for x in v)}")
        res["ratio_sdk_to_raw"] = statistics.median(times["mlscale train_xgboost"]) / base
        res["ratio_sdk_progress_to_raw"] = statistics.median(times["mlscale train_xgboost (progress bar)"]) / base
        print(f"  eval AUC: raw {raw_auc:.4f}, sdk {sdk_auc:.4f}")
        print(f"  SDK/raw = {res['ratio_sdk_to_raw']:.3f}  (with progress bar {res['ratio_sdk_progress_to_raw']:.3f})")

        # prediction on all rows
        booster = outs["mlscale train_xgboost"].booster
        X = frame[features]
        def ours(): return client.compute(predict(h, outs["mlscale train_xgboost"], frame)).result()
        def dmatrix_predict():
            with client.as_current():
                return client.compute(xgb.dask.predict(client, booster, X)).result()
        pt_in, p_in = timed(ours, args.repeats)
        pt_dm, p_dm = timed(dmatrix_predict, args.repeats)
        same = bool(np.allclose(np.asarray(p_in), np.asarray(p_dm), atol=1e-5))
        y = client.compute(frame[target]).result()
        res["predict"] = {
            "inplace_predict_median_s": statistics.median(pt_in),
            "dask_predict_median_s": statistics.median(pt_dm),
            "same_predictions": same,
            "auc_all_rows": float(roc_auc_score(y, np.asarray(p_in))),
        }
        print(f"\nprediction on {n:,} rows, median of {args.repeats}:")
        print(f"  mlscale predict (inplace_predict)     {statistics.median(pt_in):7.2f}s")
        print(
            f"  xgboost.dask.predict (DMatrix)        {statistics.median(pt_dm):7.2f}s   "
            f"({statistics.median(pt_dm) / statistics.median(pt_in):.1f}x the inplace time); same predictions: {same}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
