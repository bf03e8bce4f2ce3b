"""`train_torch` (PyTorch DDP, one rank per Dask worker) and `tune` (Optuna trials as Dask tasks) on real
worker processes, a real MLflow store and a real Optuna SQLite study store. No mocks."""
import os, subprocess, sys, threading, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlscale_sdk.clusters import start_cluster, gpu_info
from mlscale_sdk.data import make_transactions, basic_features
from mlscale_sdk import train as T

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def cluster():
    with start_cluster("local", n_workers=2, threads_per_worker=1, register=False, set_as_default=False) as h:
        h.wait_for_workers(2)
        yield h


@pytest.fixture(scope="module")
def parts():
    "Training data as 4 pandas partitions (identical to what the workers compute), and a held-out set."
    frame, cols = basic_features(make_transactions(24_000, seed=11, npartitions=4))
    held, _ = basic_features(make_transactions(6_000, seed=12, npartitions=1))
    fill = {"cust_amount_std": 0.0}   # customers with one transaction have no spread
    ps = [frame.get_partition(i).compute(scheduler="sync").fillna(fill) for i in range(frame.npartitions)]
    return ps, cols, held.compute(scheduler="sync").fillna(fill)


def _frame(ps):
    import dask.dataframe as dd
    return dd.from_delayed([__import__("dask").delayed(p) for p in ps], meta=ps[0].iloc[:0], verify_meta=False)


def net(n):
    return T.mlp(n, hidden=(16,))


def _std(X):
    mean = X.mean(0, dtype="float64"); std = np.sqrt(np.maximum((X.astype("float64")**2).mean(0) - mean**2, 0))
    return mean, np.where(std > 1e-12, std, 1.0)


def _eval_loss(model, Xe, ye):
    import torch.nn.functional as F
    with torch.no_grad(): return float(F.binary_cross_entropy_with_logits(model(Xe).reshape(-1), ye))


def _reference(ps, cols, held, *, epochs, batch_size, lr, seed, batches):
    """Plain single-process PyTorch: one model, Adam, the global batch each step, eval loss per epoch.
    `batches(epoch, n)` gives the row indices of every step of an epoch."""
    import torch.nn.functional as F
    df = pd.concat(ps, ignore_index=True)
    X = T._encode(df, cols, {c: list(df[c].cat.categories) for c in cols if isinstance(df[c].dtype, pd.CategoricalDtype)})
    mean, std = _std(X)
    cats = {c: list(df[c].cat.categories) for c in cols if isinstance(df[c].dtype, pd.CategoricalDtype)}
    Xt = torch.as_tensor((X - mean)/std, dtype=torch.float32); yt = torch.as_tensor(df.is_fraud.to_numpy("float32"))
    Xe = torch.as_tensor((T._encode(held, cols, cats) - mean)/std, dtype=torch.float32); ye = torch.as_tensor(held.is_fraud.to_numpy("float32"))
    torch.manual_seed(seed)
    model = net(len(cols)); opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = []
    for e in range(epochs):
        losses = []
        for idx in batches(e, len(df)):
            opt.zero_grad(); loss = F.binary_cross_entropy_with_logits(model(Xt[idx]).reshape(-1), yt[idx]); loss.backward(); opt.step()
            losses.append(loss.item())
        hist.append({"train_loss": float(np.mean(losses)), "eval_loss": _eval_loss(model, Xe, ye)})
    return hist


def test_ddp_on_two_workers_follows_single_process_training(cluster, parts):
    """The issue's proof: 2 CPU ranks vs. plain single-process PyTorch with the same seed, global batch (256),
    learning rate and data. Stated tolerance: the held-out loss after every epoch within 0.01 (absolute,
    the loss is ~0.1-0.3) and the final one within 5% (relative) of single-process training, which
    differs only in the order in which rows are drawn."""
    ps, cols, held = parts
    E, B, LR = 4, 256, 3e-3
    r = T.train_torch(cluster, net, _frame(ps), features=cols, eval_data=held, epochs=E, batch_size=B, lr=LR, seed=0,
                      track=False, progress=False)
    assert r.world_size == 2 and r.backend == "gloo" and sorted(sum(r.shards, [])) == [0, 1, 2, 3]
    assert r.n_train == 24_000 and r.n_eval == 6_000 and r.steps_per_epoch == 12_000 // 128
    g = torch.Generator().manual_seed(0)
    ref = _reference(ps, cols, held, epochs=E, batch_size=B, lr=LR, seed=0,
                     batches=lambda e, n: torch.randperm(n, generator=g)[: (n//B)*B].reshape(-1, B))
    ddp = [h["eval_loss"] for h in r.history]; single = [h["eval_loss"] for h in ref]
    print("eval loss per epoch, DDP 2 ranks:", np.round(ddp, 5), "single process:", np.round(single, 5))
    assert all(abs(a - b) <= 0.01 for a, b in zip(ddp, single)), (ddp, single)
    assert abs(ddp[-1] - single[-1]) <= 0.05*single[-1]
    assert ddp[-1] < ddp[0] and single[-1] < single[0]
    # the model reaches the fraud signal on held-out rows
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(held.is_fraud, r.predict(held)) > 0.75


def test_ddp_gradient_averaging_is_exact(cluster, parts):
    """With the same global batches (rank 0's rows then rank 1's at each step), DDP and one process take the
    same steps: the losses agree to float32 rounding."""
    ps, cols, held = parts
    E, B, LR = 3, 256, 3e-3
    r = T.train_torch(cluster, net, _frame(ps), features=cols, eval_data=held, epochs=E, batch_size=B, lr=LR, seed=5,
                      track=False, progress=False)
    shard_rows = [sum(len(ps[i]) for i in s) for s in r.shards]
    ordered = [ps[i] for s in r.shards for i in s]     # rank 0's partitions, then rank 1's
    offs = np.cumsum([0] + shard_rows)[:-1]
    lb, steps = B // 2, r.steps_per_epoch
    def batches(e, n):
        per = [T._epoch_batches(shard_rows[k], lb, steps, 5, e, k) for k in range(2)]
        return [np.concatenate([per[k][s] + offs[k] for k in range(2)]) for s in range(steps)]
    ref = _reference(ordered, cols, held, epochs=E, batch_size=B, lr=LR, seed=5, batches=batches)
    for got, want in zip(r.history, ref):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4, abs=1e-6)
        assert got["eval_loss"] == pytest.approx(want["eval_loss"], rel=1e-4, abs=1e-6)


def test_tracking_and_mlflow_model(cluster, parts, project):
    import mlflow
    from mlscale_sdk import tracking
    ps, cols, held = parts
    r = T.train_torch(cluster, net, _frame(ps), features=cols, epochs=3, batch_size=256, lr=3e-3, registered_model_name="fraud-torch",
                      run_name="torch-test", progress=False)
    c = tracking.client()
    run = c.get_run(r.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "torch-test"
    assert run.data.params["world_size"] == "2" and run.data.params["backend"] == "gloo" and run.data.params["batch_size"] == "256"
    for k in ("train_loss", "eval_loss", "eval_auc", "samples_per_s"):
        hist = c.get_metric_history(r.run_id, k)
        assert [m.step for m in sorted(hist, key=lambda m: m.step)] == [1, 2, 3], k
    assert run.data.metrics["eval_loss"] == pytest.approx(r.history[-1]["eval_loss"])
    # the model: signature, metadata, registered, loads and predicts like the result
    pf = mlflow.pyfunc.load_model(r.model_uri)
    assert pf.metadata.signature is not None and pf.metadata.metadata["features"] == cols
    X = r.encode(held.head(50))
    assert np.allclose(np.asarray(pf.predict(X)).reshape(-1), r.predict(held.head(50)), atol=1e-5)
    assert tracking.model_version("fraud-torch", 1).run_id == r.run_id


def test_clear_errors(cluster, parts, tmp_path):
    ps, cols, held = parts
    df = ps[0].head(2_000)
    def err(exc=T.TrainingError, **kw):
        args = dict(cluster_or_client=cluster, model_fn=net, data=df, features=cols, epochs=1, track=False, progress=False)
        with pytest.raises(exc) as e: T.train_torch(**{**args, **kw})
        return str(e.value)
    assert "multiple of the number of workers (2)" in err(batch_size=255)
    assert "'label' not found" in err(target="label")
    assert "astype({'who': 'category'})" in err(data=df.assign(who="x"), features=cols + ["who"])
    assert "one output per row" in err(model_fn=lambda n: T.mlp(n, n_out=2))
    assert "model_fn(14) failed on the client" in err(model_fn=lambda n: 1/0)
    assert "needs checkpoint_dir" in err(resume=True)
    assert "no checkpoint" in err(resume=True, checkpoint_dir=tmp_path/"none")
    assert "n_workers=3" in err(n_workers=3)
    assert "optimizer must be" in err(optimizer="lbfgs")
    # found on the workers, by every rank at once
    nan = df.astype({"is_fraud": "float64"}); nan.loc[nan.index[:4], "is_fraud"] = np.nan
    assert "4 missing value(s)" in err(T.TrainingDataError, data=nan)
    assert "larger than the smallest shard" in err(T.TrainingDataError, batch_size=100_000)
    # a checkpoint made with other settings is not resumed
    T.train_torch(cluster, net, df, features=cols, epochs=1, checkpoint_dir=tmp_path/"ck", track=False, progress=False)
    assert "batch_size: checkpoint 512, now 256" in err(resume=True, checkpoint_dir=tmp_path/"ck", batch_size=256)
    # the cluster is still fine after all of that
    assert T.train_torch(cluster, net, df, features=cols, epochs=1, track=False, progress=False).history


def test_worker_death_ends_the_call_then_resume_matches_an_uninterrupted_run(parts, tmp_path):
    "A worker killed mid-training: WorkerLostError within seconds, never a hang; resume=True finishes the run."
    ps, cols, held = parts
    big = _frame(ps)
    kw = dict(features=cols, epochs=8, batch_size=64, lr=1e-3, seed=3, track=False, progress=False)
    ck = tmp_path/"ck"
    with start_cluster("local", n_workers=2, threads_per_worker=1, register=False, set_as_default=False) as h:
        client = h.client; h.wait_for_workers(2)
        killed = {}
        def kill_after_two_epochs():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if (ck/"last.pt").exists() and torch.load(ck/"last.pt", weights_only=True)["epoch"] >= 2:
                    addr = sorted(client.scheduler_info(n_workers=-1)["workers"])[1]   # rank 1
                    killed["t"], killed["addr"] = time.monotonic(), addr
                    try: client.run(os._exit, 1, workers=[addr])
                    except Exception: pass
                    return
                time.sleep(0.05)
        th = threading.Thread(target=kill_after_two_epochs, daemon=True); th.start()
        with pytest.raises(T.WorkerLostError) as e:
            T.train_torch(h, net, big, checkpoint_dir=ck, collective_timeout=5, timeout=300, **kw)
        raised = time.monotonic(); th.join(5)
        assert "addr" in killed, "training never reached its second epoch"
        assert raised - killed["t"] < 15, f"took {raised - killed['t']:.1f}s after the kill"
        msg = str(e.value)
        assert killed["addr"] in msg and "left the cluster" in msg and "resume=True" in msg and str(ck) in msg
        done = torch.load(ck/"last.pt", weights_only=True)["epoch"]
        assert 2 <= done < 8
        print(f"WorkerLostError {raised - killed['t']:.2f}s after the kill; checkpoint at epoch {done}")
        # the nanny restarts the worker; the surviving rank gives up within collective_timeout
        h.wait_for_workers(2, timeout=60)
        t_end = time.monotonic() + 30
        while client.processing() and any(client.processing().values()) and time.monotonic() < t_end: time.sleep(0.2)
        resumed = T.train_torch(h, net, big, checkpoint_dir=ck, resume=True, timeout=300, **kw)
        full = T.train_torch(h, net, big, timeout=300, **kw)
    assert resumed.resumed_from == done and len(resumed.history) == 8
    # same shards, same batch order, restored weights and optimizer state: the same run
    for a, b in zip(resumed.history, full.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4) and a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-4)


def test_timeout_is_honoured(cluster, parts):
    ps, cols, _ = parts
    t = time.monotonic()
    with pytest.raises(T.TrainingTimeout):
        T.train_torch(cluster, net, _frame(ps), features=cols, epochs=500, batch_size=32, collective_timeout=5, timeout=4,
                      track=False, progress=False)
    assert time.monotonic() - t < 10
    # the abandoned ranks notice the cancellation and stop: the worker threads are free again within seconds
    # (the scheduler forgets cancelled tasks at once; the workers' executing threads tell the truth)
    busy = lambda: {w: list(v.values()) for w, v in cluster.client.run(lambda dask_worker: dict(dask_worker.active_threads)).items() if v}
    t = time.monotonic()
    assert any("mlscale-torch-rank" in str(k) for ks in busy().values() for k in ks), "the ranks were not running at the timeout"
    while busy():
        assert time.monotonic() - t < 15, f"ranks still running: {busy()}"
        time.sleep(0.2)
    print(f"worker threads free {time.monotonic() - t:.1f}s after the timeout")
    assert T.train_torch(cluster, net, ps[0], features=cols, epochs=1, track=False, progress=False).history


# ---------------------------------------------------------------------------------------------- tune

def torch_objective_factory(df, cols):
    def objective(p):
        r = T.train_torch(None, lambda n: T.mlp(n, hidden=(p["width"],)), df, features=cols, epochs=2, batch_size=256,
                          lr=p["lr"], progress=False)
        return {"eval_loss": r.metrics["eval_loss"], "eval_auc": r.metrics["eval_auc"]}
    return objective


def test_tune_torch_stores_the_study_and_nested_runs(cluster, parts, project):
    import optuna
    from mlscale_sdk import tracking
    from mlscale_sdk.config import settings
    ps, cols, _ = parts
    obj = torch_objective_factory(ps[0], cols)
    space = {"lr": ("log", 1e-3, 3e-2), "width": [8, 32], "epochs_note": "fixed"}
    r = T.tune(obj, space, n_trials=4, cluster=cluster, metric="eval_loss", study_name="torch-study")
    assert (r.n_trials, r.n_new, r.n_failed) == (4, 4, 0) and r.metric == "eval_loss" and r.direction == "minimize"
    assert r.best_params["epochs_note"] == "fixed" and 1e-3 <= r.best_params["lr"] <= 3e-2
    # the study survives the process: another interpreter reads it from the state directory
    db = settings().state_dir/"optuna.db"
    assert db.exists() and r.storage == f"sqlite:///{db}"
    out = subprocess.run([sys.executable, "-c", f"import optuna; s = optuna.load_study(study_name='torch-study', storage='sqlite:///{db}');"
                          "print(len(s.trials), s.best_value)"], capture_output=True, text=True, check=True)
    n, best = out.stdout.split()
    assert int(n) == 4 and float(best) == pytest.approx(r.best_value)
    # MLflow: one parent, a child per trial with its params and metrics, the best on the parent
    c = tracking.client()
    parent = c.get_run(r.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlscale.study"] == "torch-study"
    assert parent.data.metrics["best_eval_loss"] == pytest.approx(r.best_value)
    assert float(parent.data.tags["best.lr"]) == pytest.approx(r.best_params["lr"])
    assert parent.data.params["direction"] == "minimize" and "space.lr" in parent.data.params
    kids = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{r.parent_run_id}'")
    assert len(kids) == 4 and all(k.info.status == "FINISHED" for k in kids)
    assert all({"lr", "width", "epochs_note"} <= set(k.data.params) and {"eval_loss", "eval_auc"} <= set(k.data.metrics) for k in kids)
    assert min(k.data.metrics["eval_loss"] for k in kids) == pytest.approx(r.best_value)
    assert len(c.get_metric_history(r.parent_run_id, "eval_loss")) == 4
    # continuing the study runs only the missing trials, under the same parent, with new parameters
    r2 = T.tune(obj, space, n_trials=6, cluster=cluster, metric="eval_loss", study_name="torch-study")
    assert (r2.n_trials, r2.n_new, r2.parent_run_id) == (6, 2, r.parent_run_id)
    assert len(c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{r.parent_run_id}'")) == 6
    lrs = [t.params["lr"] for t in r2.study.trials]
    assert len(set(lrs)) == 6, "a continued study replayed earlier samples"
    r3 = T.tune(obj, space, n_trials=6, cluster=cluster, metric="eval_loss", study_name="torch-study")
    assert r3.n_new == 0
    with pytest.raises(ValueError, match="cannot be continued with direction='maximize'"):
        T.tune(obj, space, n_trials=7, cluster=cluster, metric="eval_loss", study_name="torch-study", direction="maximize")


def test_tune_xgboost_objective(cluster, parts, project):
    ps, cols, _ = parts
    df = pd.concat(ps[:2], ignore_index=True)
    def objective(p):
        r = T.train_xgboost(None, df, features=cols, num_boost_round=20, params={"max_depth": p["depth"], "learning_rate": p["lr"]},
                            progress=False)
        return {"auc": r.metrics["auc"], "logloss": r.metrics["logloss"]}
    r = T.tune(objective, {"depth": ("int", 2, 6), "lr": ("log", 0.03, 0.3)}, n_trials=4, cluster=cluster, metric="auc",
               direction="maximize", sampler="random", study_name="xgb-study")
    assert r.n_trials == 4 and 0.7 < r.best_value <= 1 and 2 <= r.best_params["depth"] <= 6


def _claim(path):
    "False when `path` could be created now (claimed), True when it existed."
    try: os.close(os.open(path, os.O_CREAT | os.O_EXCL)); return False
    except FileExistsError: return True


def test_tune_failures_are_clear(cluster, project, tmp_path):
    import optuna
    from mlscale_sdk import tracking
    def broken(p): raise KeyError("no such column")
    with pytest.raises(T.TrainingError, match=r"failed in trial \d+ of study 'broken' before any trial succeeded: KeyError"):
        T.tune(broken, {"x": ("float", 0, 1)}, n_trials=3, cluster=cluster, study_name="broken")
    s = optuna.load_study(study_name="broken", storage=f"sqlite:///{project/'.mlscale'/'optuna.db'}")
    assert s.trials and all(t.state.name == "FAIL" for t in s.trials)
    pid = s.user_attrs["mlflow_parent_run_id"]
    assert tracking.client().get_run(pid).info.status == "FAILED"
    # a trial that fails after others succeeded is recorded and the search goes on
    calls = tmp_path/"calls"; calls.mkdir()
    def flaky(p):   # the 4th call (counted across the worker processes) fails
        i = next(i for i in range(1000) if not _claim(calls/str(i)))
        if i == 3: raise RuntimeError("diverged")
        return p["x"]
    r = T.tune(flaky, {"x": ("float", 0, 1)}, n_trials=8, cluster=cluster, study_name="flaky", sampler="random", seed=1)
    assert (r.n_new, r.n_failed, r.n_trials) == (9, 1, 8)   # the failed trial was replaced
    for bad, msg in [({"x": ("log", 1, 0.1)}, "space['x']"), ({"x": ("gauss", 0, 1)}, "unknown kind"), ({}, "non-empty dict")]:
        with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            T.tune(lambda p: 0, bad, cluster=cluster, track=False)
    with pytest.raises(ValueError, match="direction"): T.tune(lambda p: 0, {"x": [1, 2]}, cluster=cluster, direction="up")
    with pytest.raises(T.TrainingError, match="several metrics .'a', 'b'.: say which to optimise with metric="):
        T.tune(lambda p: {"a": 1, "b": 2}, {"x": [1, 2]}, n_trials=1, cluster=cluster, track=False, study_name="two-metrics")
    with pytest.raises(TypeError, match="must not capture a cluster"):   # found before any trial is sent
        T.tune(lambda p: len(cluster.workers()), {"x": [1, 2]}, n_trials=1, cluster=cluster, track=False, study_name="captures")
    # one driver per study: a second process (here: a held lock) is refused, not interleaved
    import hashlib
    from mlscale_sdk.config import state_dir
    storage = f"sqlite:///{state_dir()/'optuna.db'}"
    lock = T._study_lock(state_dir()/"locks"/f"optuna-{hashlib.sha1((storage + 'flaky').encode()).hexdigest()[:16]}.lock")
    try:
        with pytest.raises(T.TrainingError, match="being tuned by another process"):
            T.tune(flaky, {"x": ("float", 0, 1)}, n_trials=9, cluster=cluster, study_name="flaky")
    finally: lock.close()


# ---------------------------------------------------------------------------------------------- template

def test_torch_template_runs_with_papermill(project, tmp_path):
    import papermill as pm, mlflow
    from mlscale_sdk import tracking
    root = Path(__file__).resolve().parents[1]
    out = tmp_path/"out.ipynb"
    pm.execute_notebook(str(root/"templates"/"torch_tabular.ipynb"), str(out), cwd=str(tmp_path), kernel_name="python3",
                        parameters={"rows": 20_000, "epochs": 2, "n_workers": 2, "experiment": "template-test"}, progress_bar=False)
    import nbformat
    nb = nbformat.read(out, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    runs = tracking.client().search_runs([tracking.ensure_experiment("template-test")])
    trained = [r for r in runs if "eval_loss" in r.data.metrics]
    assert len(trained) == 1 and trained[0].info.status == "FINISHED" and trained[0].data.params["epochs"] == "2"


# ---------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.skipif(gpu_info().count == 0, reason=f"no NVIDIA GPU visible: {gpu_info().reason}")
def test_gpu_ddp_uses_nccl(parts):
    pytest.importorskip("dask_cuda", reason="dask-cuda is not installed (pip install 'mlscale-sdk[gpu]')")
    ps, cols, held = parts
    with start_cluster("local-gpu", register=False) as h:
        assert h.gpu
        r = T.train_torch(h, net, _frame(ps), features=cols, eval_data=held, epochs=3, batch_size=256 * len(h.workers()),
                          track=False, progress=False)
        assert r.backend == "nccl" and r.world_size == len(h.workers())
        assert r.history[-1]["eval_loss"] < r.history[0]["eval_loss"]
