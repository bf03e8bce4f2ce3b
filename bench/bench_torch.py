"""Benchmark: PyTorch DDP with `train_torch` on the Dask cluster vs. single-process PyTorch, and `tune` on the
cluster vs. sequential Optuna.

Training: the same network, optimizer, global batch, epochs and data (demo transactions, persisted on the
workers) trained (a) by plain single-process PyTorch in this process (all cores), (b) by `train_torch` on
1 worker, (c) by `train_torch` on all workers (DDP, gloo). Reported: training samples/s (median over epochs,
the training loop only) and the wall time of the whole call.
Tuning: the same objective (a small network trained for a few epochs) and the same number of trials run by
`tune` on the cluster (trials as Dask tasks, study in SQLite, MLflow child runs) and by a plain
`optuna.study.optimize` loop in this process.

    python bench/bench_torch.py                       # 200,000 rows, 2 workers
    python bench/bench_torch.py --rows 50000 --epochs 2 --trials 4 --json out.json
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def single_process(X, y, make_model, epochs, batch, lr, seed):
    "Plain PyTorch, one process: standardize, shuffle, global batch, Adam. Returns per-epoch samples/s and wall time."
    import torch
    import torch.nn.functional as F
    t0 = time.perf_counter()
    mean, std = X.mean(0), X.std(0) + 1e-6
    Xt = torch.as_tensor((X - mean)/std, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    torch.manual_seed(seed)
    model = make_model(X.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    rates, n = [], len(yt)
    for _ in range(epochs):
        te = time.perf_counter()
        steps = n // batch
        for idx in torch.randperm(n, generator=g)[:steps*batch].reshape(steps, batch):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(model(Xt[idx]).reshape(-1), yt[idx]).backward()
            opt.step()
        rates.append(steps*batch/(time.perf_counter() - te))
    return rates, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="transactions to generate")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024, help="global batch size")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 128], help="hidden layer widths")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers (one thread each) = DDP ranks")
    ap.add_argument("--trials", type=int, default=8, help="trials for the tuning comparison")
    ap.add_argument("--trial-rows", type=int, default=60_000, help="rows each trial trains on")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions of each training variant (interleaved)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    os.environ.setdefault("MLSCALE_HOME", tempfile.mkdtemp(prefix="bench-torch-"))  # throw-away MLflow and study stores
    import optuna
    import torch

    from mlscale_sdk.clusters import start_cluster
    from mlscale_sdk.data import basic_features, make_transactions, persist
    from mlscale_sdk.train import _encode, _trial_task, mlp, train_torch, tune

    hidden, seed, lr = tuple(args.hidden), 0, 1e-3
    make_model = lambda n: mlp(n, hidden=hidden)
    res = {"rows": args.rows, "epochs": args.epochs, "batch": args.batch, "hidden": hidden, "workers": args.workers,
           "torch": torch.__version__, "cpus": os.cpu_count()}
    with start_cluster("local", n_workers=args.workers, threads_per_worker=1, register=False) as h:
        client = h.client
        h.wait_for_workers(args.workers)
        frame, features = basic_features(make_transactions(args.rows, seed=seed, npartitions=2*args.workers))
        frame = persist(frame.fillna({"cust_amount_std": 0.0}), client)
        pdf = client.compute(frame).result()
        cats = {c: list(pdf[c].cat.categories) for c in features if hasattr(pdf[c], "cat")}
        X, y = _encode(pdf, features, cats), pdf.is_fraud.to_numpy("float32")
        print(f"data: {len(pdf):,} rows, {len(features)} features; network {hidden}, global batch {args.batch}, "
              f"{args.epochs} epochs; {os.cpu_count()} CPUs", flush=True)
        kw = dict(features=features, epochs=args.epochs, batch_size=args.batch, lr=lr, seed=seed, eval_fraction=0.0,
                  track=False, progress=False)
        train_torch(h, make_model, frame, **{**kw, "epochs": 1})   # warm-up: torch imported on the workers

        threads = torch.get_num_threads()
        def single(n_threads):
            torch.set_num_threads(n_threads)
            try:
                return single_process(X, y, make_model, args.epochs, args.batch, lr, seed)
            finally:
                torch.set_num_threads(threads)
        def ours(n_workers):
            t = time.perf_counter()
            r = train_torch(h, make_model, frame, n_workers=n_workers, **kw)
            return [e["samples_per_s"] for e in r.history], time.perf_counter() - t
        variants = {f"single-process PyTorch (this process, {threads} threads)": lambda: single(threads),
                    "single-process PyTorch (this process, 1 thread)": lambda: single(1),
                    "train_torch, 1 worker": lambda: ours(1),
                    f"train_torch DDP, {args.workers} workers": lambda: ours(args.workers)}
        got = {k: ([], []) for k in variants}
        for _ in range(args.repeats):   # interleaved, so load from other processes hits every variant alike
            for k, fn in variants.items():
                r, w = fn()
                got[k][0].extend(r)
                got[k][1].append(w)
        med = lambda r: statistics.median(r)
        rows = {k: (med(r), med(w)) for k, (r, w) in got.items()}
        print(
            f"\ntraining throughput (median over epochs and {args.repeats} repeats, training loop only) and median "
            "wall time of the call:"
        )
        for k, (r, w) in rows.items():
            print(f"  {k:48s} {r:10,.0f} samples/s   {w:6.1f}s wall")
        rates = got[f"single-process PyTorch (this process, {threads} threads)"][0]
        base = med(rates)
        res["train"] = {k: {"samples_per_s": r, "wall_s": w} for k, (r, w) in rows.items()}
        ddp_key = f"train_torch DDP, {args.workers} workers"
        res["ratio_ddp_to_single"] = rows[ddp_key][0] / base
        res["ratio_ddp_to_single_1thread"] = (
            rows[ddp_key][0] / rows["single-process PyTorch (this process, 1 thread)"][0]
        )
        res["ratio_ddp_to_one_worker"] = rows[ddp_key][0] / rows["train_torch, 1 worker"][0]
        print(
            f"  DDP/single-process samples/s = {res['ratio_ddp_to_single']:.2f} (vs 1 thread: "
            f"{res['ratio_ddp_to_single_1thread']:.2f}); "
            f"DDP/train_torch on 1 worker = {res['ratio_ddp_to_one_worker']:.2f}"
        )

        # tuning: the same objective, trials in parallel on the cluster vs. one after another in this process
        small = pdf.sample(n=min(len(pdf), args.trial_rows), random_state=0)
        def objective(p):
            r = train_torch(
                None,
                lambda n: mlp(n, hidden=(p["width"],)),
                small,
                features=features,
                epochs=3,
                batch_size=256,
                lr=p["lr"],
                progress=False,
            )
            return r.metrics["eval_loss"]
        space = {"lr": ("log", 1e-4, 1e-1), "width": [16, 64]}
        tune(
            objective, space, n_trials=2, cluster=h, study_name="warm-up"
        )  # creates the MLflow and study stores (once per project)
        t = time.perf_counter()
        tr = tune(objective, space, n_trials=args.trials, cluster=h, study_name="bench")
        tune_s = time.perf_counter() - t
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        t = time.perf_counter()
        # the objective runs here exactly as in a trial (train_torch(None, ...) trains in this process, all threads)
        study.optimize(lambda trial: _trial_task(objective, {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                                                             "width": trial.suggest_categorical("width", [16, 64])},
                                                 threads=threads)["value"], n_trials=args.trials)
        seq_s = time.perf_counter() - t
        study1 = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        t = time.perf_counter()
        study1.optimize(lambda trial: _trial_task(objective, {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                                                              "width": trial.suggest_categorical("width", [16, 64])},
                                                  threads=1)["value"], n_trials=args.trials)
        seq1_s = time.perf_counter() - t
        res["tune"] = {
            "trials": args.trials,
            "tune_s": tune_s,
            "sequential_s": seq_s,
            "tune_trials_per_min": 60 * args.trials / tune_s,
            "sequential_trials_per_min": 60 * args.trials / seq_s,
            "sequential_1thread_s": seq1_s,
            "sequential_1thread_trials_per_min": 60 * args.trials / seq1_s,
            "best_tune": tr.best_value,
            "best_sequential": study.best_value,
        }
        res["ratio_tune_to_sequential"] = seq_s / tune_s
        print(f"\ntuning, {args.trials} trials of the same objective:")
        print(
            f"  mlscale tune on {args.workers} workers (+ SQLite study, MLflow runs) "
            f"{60 * args.trials / tune_s:6.1f} trials/min  ({tune_s:.1f}s)"
        )
        print(
            f"  sequential optuna in this process, {threads} threads            {60 * args.trials / seq_s:6.1f} "
            f"trials/min  ({seq_s:.1f}s)"
        )
        print(
            f"  sequential optuna in this process, 1 thread             {60 * args.trials / seq1_s:6.1f} trials/min  "
            f"({seq1_s:.1f}s)"
        )
        res["ratio_tune_to_sequential_1thread"] = seq1_s / tune_s
        print(
            f"  tune/sequential trials per minute = {res['ratio_tune_to_sequential']:.2f} (vs 1 thread: "
            f"{res['ratio_tune_to_sequential_1thread']:.2f})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
