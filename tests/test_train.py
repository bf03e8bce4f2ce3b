"""`train_xgboost` and `predict` on a real two-worker LocalCluster: quality, inputs, errors, a worker dying."""
import json, os, threading, time

import numpy as np
import pandas as pd
import pytest

from mlscale_sdk.clusters import start_cluster, gpu_info
from mlscale_sdk.data import make_transactions, basic_features, write_parquet
from mlscale_sdk import train as T
from conftest import wait_for


@pytest.fixture(scope="module")
def cluster():
    # not the default client: `test_default_client` checks what happens without one
    with start_cluster("local", n_workers=2, threads_per_worker=1, register=False, set_as_default=False) as h:
        h.wait_for_workers(2)
        yield h


@pytest.fixture(scope="module")
def data(cluster):
    "~100k training rows and 40k held-out rows from another seed (other customers), persisted."
    frame, cols = basic_features(make_transactions(100_000, seed=1, npartitions=4))
    held, _ = basic_features(make_transactions(40_000, seed=2, npartitions=2), keep=["transaction_id"])
    c = cluster.client
    return c.persist(frame), cols, c.persist(held)


@pytest.fixture(scope="module")
def result(cluster, data):
    frame, cols, _ = data
    return T.train_xgboost(cluster, frame, features=cols, num_boost_round=200, progress=False)


def test_trains_a_useful_model(result, cluster, data):
    from sklearn.metrics import roc_auc_score
    _, cols, held = data
    r = result
    assert r.params["objective"] == "binary:logistic" and r.params["device"] == "cpu" and r.params["tree_method"] == "hist"
    assert r.n_train + r.n_eval == 100_000 and 15_000 < r.n_eval < 25_000
    assert r.metrics["auc"] > 0.8 and r.metrics["eval-auc"] == r.metrics["auc"] and "logloss" in r.metrics
    assert r.best_iteration is not None and r.booster.num_boosted_rounds() == r.best_iteration + 1  # cut at the best round
    assert r.rounds < 200  # early stopping stopped it
    assert r.features == cols and r.categories["channel"] == ["in_store", "online", "atm"]
    # held-out data from other customers
    scored = cluster.client.compute(held.assign(p=T.predict(cluster, r, held))[["p", "is_fraud"]]).result()
    auc = roc_auc_score(scored.is_fraud, scored.p)
    assert auc > 0.75, auc


def test_predict_matches_the_booster_locally(result, cluster, data):
    _, cols, held = data
    pred = T.predict(cluster.client, result, held)
    assert pred.npartitions == held.npartitions and pred.name == "prediction"
    got = cluster.client.compute(held.assign(p=pred)).result()
    want = result.booster.inplace_predict(got[cols])
    assert np.allclose(got.p.to_numpy(), want, atol=1e-6)
    # also from a plain Booster and from pandas
    local = got.head(500)
    p2 = cluster.client.compute(T.predict(cluster, result.booster, local)).result()
    assert np.allclose(p2.to_numpy(), result.booster.inplace_predict(local[cols]), atol=1e-6)


def test_predict_tolerates_category_order_and_unseen_categories(result, cluster, data):
    _, cols, held = data
    df = cluster.client.compute(held).result().head(300)
    base = result.booster.inplace_predict(df[cols])
    shuffled = df.astype({"channel": pd.CategoricalDtype(["atm", "online", "in_store"])})
    got = cluster.client.compute(T.predict(cluster, result, shuffled)).result()
    assert np.allclose(got.to_numpy(), base, atol=1e-6)
    odd = df.assign(channel=df.channel.cat.add_categories(["phone"]).where(df.index != df.index[0], "phone"))
    got = cluster.client.compute(T.predict(cluster, result, odd)).result()  # unseen -> missing, not an error
    assert len(got) == 300 and np.isfinite(got.to_numpy()).all()


def test_result_views(result):
    imp = result.feature_importance()
    assert sorted(imp.index) == sorted(result.features) and imp.is_monotonic_decreasing and imp.iloc[0] > 0
    assert result.feature_importance("weight").name == "weight"
    fig = result.plot()
    assert len(fig.axes) == 2 and {a.get_title() for a in fig.axes} == {"auc", "logloss"}
    html = result._repr_html_()
    assert "auc" in html and "binary:logistic" in html and "train" in html
    assert "auc=" in repr(result)
    assert set(result.history) == {"eval"} and len(result.history["eval"]["auc"]) == result.rounds


def test_pandas_and_parquet_inputs_and_regression(cluster, tmp_path):
    tx = make_transactions(20_000, seed=3, npartitions=2)
    cols = ["merchant_category", "channel", "card_present", "country_mismatch", "customer_age", "account_age_days"]
    pdf = tx.compute()
    r = T.train_xgboost(cluster, pdf, features=cols, num_boost_round=20, progress=False)
    assert r.n_train + r.n_eval == 20_000 and "auc" in r.metrics
    # a Parquet folder: categories are read from the data
    path = write_parquet(tx, tmp_path / "tx")
    r = T.train_xgboost(cluster.client, str(path), features=cols, num_boost_round=20, progress=False)
    assert r.categories["merchant_category"] and "auc" in r.metrics
    # a continuous target: regression with RMSE
    r = T.train_xgboost(cluster, tx, target="amount", features=cols, num_boost_round=20, progress=True)
    assert r.params["objective"] == "reg:squarederror" and "rmse" in r.metrics and r.metrics["rmse"] > 0
    assert r.params["eval_metric"] == ["rmse"]


def test_default_client(cluster):
    from distributed import Client
    pdf = make_transactions(5_000, seed=8, npartitions=1).compute()
    cols = ["amount", "merchant_category", "channel", "country_mismatch"]
    with pytest.raises(T.TrainingError, match="no Dask client"):
        T.train_xgboost(None, pdf, features=cols, progress=False)
    with Client(cluster.scheduler_address) as c:  # the default client from here on
        r = T.train_xgboost(None, pdf, features=cols, num_boost_round=5, progress=False)
        assert r.n_train + r.n_eval == 5_000
        p = c.compute(T.predict(None, r, pdf)).result()
        assert len(p) == 5_000


def test_explicit_evals_and_user_params(cluster, data):
    frame, cols, held = data
    small = frame.partitions[:2]
    r = T.train_xgboost(cluster, small, features=cols, evals=[(held, "holdout")], num_boost_round=30,
                        early_stopping_rounds=None, params={"max_depth": 3, "eval_metric": ["auc"]}, progress=False)
    assert r.n_eval == 40_000 and r.n_train == cluster.client.compute(small.map_partitions(len).sum()).result()
    assert set(r.metrics) == {"holdout-auc", "auc"} and r.rounds == 30 and r.best_iteration is None
    assert r.params["max_depth"] == 3
    # no evaluation at all
    r = T.train_xgboost(cluster, small, features=cols, eval_fraction=0, num_boost_round=5, progress=False)
    assert r.metrics == {} and r.n_eval == 0 and r.rounds == 5


def _error(cluster, data, **kw):
    with pytest.raises(T.TrainingDataError) as e:
        T.train_xgboost(cluster, data, progress=False, **kw)
    assert isinstance(e.value, ValueError) and isinstance(e.value, T.TrainingError)
    return str(e.value)


def test_clear_errors(cluster, data):
    frame, cols, held = data
    pdf = cluster.client.compute(frame.partitions[0]).result().head(1_000)
    msg = _error(cluster, pdf, target="fraud")
    assert "'fraud' not found" in msg and "is_fraud" in msg and "amount" in msg  # lists the columns
    msg = _error(cluster, pdf.assign(merchant=pdf.merchant_category.astype(str), city="x"))
    assert "['merchant', 'city']" in msg and "astype({'merchant': 'category', 'city': 'category'})" in msg
    assert "ts.dt.hour" in _error(cluster, pdf.assign(when=pd.Timestamp("2026-01-01")))
    assert "not found" in _error(cluster, pdf, features=["amount", "nope"])
    assert "no rows" in _error(cluster, pdf.head(0))
    assert "no rows" in _error(cluster, frame[frame.amount < 0])  # empty after a filter, found without computing twice
    assert "left no rows to evaluate" in _error(cluster, pdf.head(2), eval_fraction=0.01)
    nan = pdf.astype({"is_fraud": "float64"})
    nan.loc[nan.index[:7], "is_fraud"] = np.nan
    assert "7 missing value(s)" in _error(cluster, nan)
    assert "must be 0/1" in _error(cluster, pdf.assign(is_fraud=pdf.is_fraud + 1))
    assert "single value" in _error(cluster, pdf.assign(is_fraud=0))
    assert "must be numeric" in _error(cluster, pdf.assign(is_fraud=pdf.is_fraud.map({0: "no", 1: "yes"})))
    assert "(data, name) pair" in _error(cluster, pdf, evals=[held])
    assert "eval_fraction" in _error(cluster, pdf, eval_fraction=1.0)
    assert "Parquet folder" in _error(cluster, [1, 2, 3])
    with pytest.raises(TypeError, match="ClusterHandle"):
        T.train_xgboost("tcp://nowhere", pdf)
    with pytest.raises(T.TrainingDataError, match="not found"):
        T.predict(cluster, T.TrainResult(None, {}, {}, None, {}, ["a"]), pdf)


def test_xgboost_errors_are_wrapped(cluster):
    pdf = make_transactions(2_000, npartitions=1).compute()
    with pytest.raises(T.TrainingError, match="XGBoost training failed"):
        T.train_xgboost(cluster, pdf, features=["amount"], params={"max_depth": -3}, progress=False)


def test_timeout_is_honoured():
    with start_cluster("local", n_workers=2, threads_per_worker=1, register=False) as h:
        frame, cols = basic_features(make_transactions(30_000, seed=4, npartitions=2))
        T.train_xgboost(h, frame, features=cols, num_boost_round=2, progress=False)  # warm: imports on the workers
        t = time.monotonic()
        with pytest.raises(T.TrainingTimeout):
            T.train_xgboost(h, frame, features=cols, num_boost_round=100_000, early_stopping_rounds=None,
                            params={"learning_rate": 0.001}, timeout=3, progress=False)
        assert time.monotonic() - t < 6
        # the abandoned training still occupies the workers: restart them, as the message says, and train again
        before = set(T._worker_ids(h.client).values())
        h.client.restart()
        # under load the stuck workers may be replaced after `restart` returns: wait for two new ones
        wait_for(lambda: len(now := set(T._worker_ids(h.client).values())) == 2 and not now & before,
                 timeout=60, what="two restarted workers")
        r = T.train_xgboost(h, frame, features=cols, num_boost_round=3, progress=False, timeout=60)
        assert r.rounds == 3


def test_worker_death_fails_fast_instead_of_hanging():
    "xgboost.dask hangs when a worker holding data dies (dmlc/xgboost#9419): we must raise within seconds."
    with start_cluster("local", n_workers=2, threads_per_worker=1, register=False) as h:
        client = h.client
        h.wait_for_workers(2)
        frame, cols = basic_features(make_transactions(30_000, seed=5, npartitions=2))
        frame = client.persist(frame)
        killed = {}

        def kill_when_training():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # xgboost.dask runs one training task per worker (keys "fn-<uuid>", xgboost 3.x)
                busy = {w: ks for w, ks in client.processing().items() if any(str(k).startswith("fn-") for k in ks)}
                if len(busy) == 2:
                    time.sleep(3.0)  # past set-up, into the boosting rounds
                    addr = sorted(busy)[0]
                    killed["t"], killed["addr"] = time.monotonic(), addr
                    try: client.run(os._exit, 1, workers=[addr])
                    except Exception: pass
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_training, daemon=True)
        killer.start()
        t0 = time.monotonic()
        with pytest.raises(T.WorkerLostError) as e:
            T.train_xgboost(h, frame, features=cols, num_boost_round=100_000, early_stopping_rounds=None,
                            params={"learning_rate": 0.001, "max_depth": 8}, progress=False, timeout=120)
        raised = time.monotonic()
        killer.join(5)
        assert "addr" in killed, "training never started on both workers"
        assert raised - killed["t"] < 30, f"took {raised - killed['t']:.1f}s after the kill"
        assert killed["addr"] in str(e.value) and "left the cluster" in str(e.value) and "Restart the cluster" in str(e.value)
        assert isinstance(e.value, T.TrainingError)
        print(f"worker killed {killed['t'] - t0:.1f}s into the call; WorkerLostError {raised - killed['t']:.2f}s later")


@pytest.mark.gpu
@pytest.mark.skipif(gpu_info().count == 0, reason=f"no NVIDIA GPU visible: {gpu_info().reason}")
def test_gpu_training_uses_cuda():
    pytest.importorskip("dask_cuda", reason="dask-cuda is not installed (pip install 'mlscale-sdk[gpu]')")
    frame, cols = basic_features(make_transactions(50_000, seed=0, npartitions=4))
    with start_cluster("local-gpu", register=False) as h:
        assert h.gpu
        r = T.train_xgboost(h, frame, features=cols, num_boost_round=50, progress=False)
        assert r.params["device"] == "cuda"
        assert json.loads(r.booster.save_config())["learner"]["generic_param"]["device"].startswith("cuda")
        assert r.metrics["auc"] > 0.75
        p = h.client.compute(T.predict(h, r, frame)).result()
        assert len(p) == 50_000
