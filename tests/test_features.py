"""Features: Dask pipeline, validation, Feast repo (SQLite and a real Redis), point-in-time joins, CLI, out of core."""
import os, shutil, subprocess, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import free_port, wait_for, mlscale

H = pd.Timedelta("1h")
T0 = pd.Timestamp("2026-01-05 10:00")


def _tx(rows):
    "Hand-made transactions: rows of (customer_id, ts, amount)."
    df = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    from mlscale_sdk.data import _dtypes
    cat_t, chan_t = _dtypes()
    n = len(df)
    return df.assign(transaction_id=np.arange(1, n + 1), merchant_category=pd.Categorical.from_codes([0] * n, dtype=cat_t),
                     channel=pd.Categorical.from_codes([1] * n, dtype=chan_t), card_present=0, country_mismatch=0,
                     customer_age=40, account_age_days=100, is_fraud=0)


HAND = [(1, T0, 10.0), (1, T0 + 0.5 * H, 20.0), (1, T0 + 2 * H, 40.0), (1, T0 + 25 * H, 100.0),
        (2, T0 + 0.25 * H, 5.0)]
CUSTOMERS = pd.DataFrame({"customer_id": [1, 2], "typical_spend": [30.0, 8.0]})


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    "One project with hand-made features computed, applied (SQLite online store); Feast imported once."
    import dask, dask.dataframe as dd
    from mlscale_sdk.config import settings
    from mlscale_sdk import features as F
    home = tmp_path_factory.mktemp("featproj")
    saved = {k: os.environ.get(k) for k in ("MLSCALE_HOME", "MLSCALE_FEAST_ONLINE")}
    os.environ["MLSCALE_HOME"] = str(home); os.environ.pop("MLSCALE_FEAST_ONLINE", None); settings.cache_clear()
    try:
        tx = dd.from_pandas(_tx(HAND), npartitions=2, sort=False)      # customer 1 spans both partitions
        with dask.config.set(scheduler="threads"):
            path = F.compute_features(tx, CUSTOMERS)
        F.apply(path)
        yield home, path
    finally:
        for k, v in saved.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
        settings.cache_clear()


def test_repo_layout_and_defaults(repo):
    home, path = repo
    from mlscale_sdk import features as F
    assert path == home / ".mlscale" / "data" / "features" / "customer_txn"
    yaml = (home / ".mlscale" / "feature_repo" / "feature_store.yaml").read_text()
    assert "provider: local" in yaml and "type: sqlite" in yaml and "type: file" in yaml
    info = F.show()
    assert info["entities"] == ["customer"] and info["feature_views"][0]["name"] == "customer_txn"
    assert set(info["feature_views"][0]["features"]) == set(F.STORE_FEATURES)


def test_point_in_time_training_frame_hand_computed(repo):
    from mlscale_sdk import features as F
    labels = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 2, 1],
        "label_ts": [T0 + H, T0 + 2 * H, T0 - H, T0 + 0.2 * H, T0 + 0.25 * H, T0 + 24.9 * H],
        "y": [0, 1, 0, 1, 0, 1]})
    tf = F.training_frame(labels, ["txn_count_1h", "amount_sum_1h", "txn_count_24h", "amount_sum_24h"], timestamp="label_ts")
    # by hand: the latest feature row at or before each label time; events after it never count
    #   11:00 -> row of 10:30: 1h (09:30,10:30] = {10, 20}; 24h the same
    #   12:00 -> row of 12:00 (exact time counts): 1h = {40}; 24h = {10, 20, 40}
    #   09:00 -> no row yet; customer 2 at 10:12 -> none yet, at 10:15 -> {5}
    #   next day 10:54 -> still the 12:00 row (the 11:00 event of that day is in the future)
    exp = pd.DataFrame({"txn_count_1h": [2, 1, np.nan, np.nan, 1, 1], "amount_sum_1h": [30.0, 40.0, np.nan, np.nan, 5.0, 40.0],
                        "txn_count_24h": [2, 3, np.nan, np.nan, 1, 3], "amount_sum_24h": [30.0, 70.0, np.nan, np.nan, 5.0, 70.0]})
    assert tf["y"].tolist() == labels["y"].tolist() and tf["customer_id"].tolist() == labels["customer_id"].tolist()
    pd.testing.assert_frame_equal(tf[exp.columns].astype(float), exp.astype(float))


def test_materialize_incremental_and_online(repo):
    from mlscale_sdk import features as F
    r1 = F.materialize(end=(T0 + 1 * H).tz_localize("UTC"), start=(T0 - 48 * H).tz_localize("UTC"))
    assert r1["entities"] == 2 and r1["rows"] == 3
    got = F.online([{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 99}], ["txn_count_1h", "amount_sum_24h"])
    assert got["txn_count_1h"] == [2, 1, None] and got["amount_sum_24h"] == [30.0, 5.0, None]
    r2 = F.materialize()     # incremental: from where the last run stopped up to now
    assert r2["start"] == r1["end"] and r2["rows"] == 2 and r2["entities"] == 1
    got = F.online(pd.DataFrame({"customer_id": [1]}), ["txn_count_24h", "amount_sum_24h", "typical_spend"])
    # the newest row, next day 11:00: 24h (prev 11:00, 11:00] = {40 at 12:00, 100}
    assert got["txn_count_24h"] == [2] and got["amount_sum_24h"] == [140.0] and got["typical_spend"] == [30.0]
    assert F.show()["feature_views"][0]["materialized_until"] is not None


def test_bad_requests_fail_clearly(repo, tmp_path):
    from mlscale_sdk import features as F
    with pytest.raises(ValueError, match="unknown feature"):
        F.online([{"customer_id": 1}], ["no_such_feature"])
    with pytest.raises(ValueError, match="needs a 'label_ts' column"):
        F.training_frame(pd.DataFrame({"customer_id": [1]}), timestamp="label_ts")
    with pytest.raises(FileNotFoundError, match="features compute"):
        F.apply(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="feast_online"):
        F.online_store_config("memcached://x")


def test_validation_failure_reports_and_writes_nothing(repo, tmp_path):
    import dask, dask.dataframe as dd
    from mlscale_sdk import features as F
    good = F.compute_features(dd.from_pandas(_tx(HAND), npartitions=2), CUSTOMERS, path=tmp_path / "f")
    before = {p.name: p.stat().st_mtime_ns for p in good.iterdir()}
    bad = _tx(HAND + [(3, T0, -7.0)])                 # negative amount, and customer 3 has no attributes
    bad.loc[0, "customer_age"] = 200
    with dask.config.set(scheduler="threads"), pytest.raises(F.FeatureValidationError) as e:
        F.compute_features(dd.from_pandas(bad, npartitions=1), CUSTOMERS, path=good)   # one partition: one full report
    msg = str(e.value)
    assert "amount: 1 value(s) below 0.0 (min -7.0)" in msg
    assert "typical_spend: 1 null(s)" in msg and "customer_age: 1 value(s) above 130" in msg
    assert {p.name: p.stat().st_mtime_ns for p in good.iterdir()} == before     # the old features untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]                   # no temporary folder left
    with pytest.raises(ValueError, match="lack the column"):
        F.build_features(dd.from_pandas(bad.drop(columns=["amount"]), npartitions=1), CUSTOMERS)


def test_redis_online_store(repo, tmp_path):
    server = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if server is None:
        pytest.skip("redis-server is not installed (run .ci/install-system.sh)")
    from mlscale_sdk import features as F
    home, path = repo
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        import redis
        r = redis.Redis(port=port)
        def up():
            try: return r.ping()
            except redis.exceptions.ConnectionError: return False
        wait_for(up, timeout=20, what="redis-server")
        rp = F.init_repo(online=f"redis://127.0.0.1:{port}/0", path=tmp_path / "repo")
        assert "type: redis" in (rp / "feature_store.yaml").read_text()
        F.apply(path, repo=rp)
        res = F.materialize(repo=rp)
        assert res["entities"] == 2
        assert r.dbsize() > 0                                                      # the values really are in Redis
        got = F.online([{"customer_id": 1}, {"customer_id": 2}], ["txn_count_24h", "amount_sum_24h"], repo=rp)
        assert got["txn_count_24h"] == [2, 1] and got["amount_sum_24h"] == [140.0, 5.0]
    finally:
        proc.terminate(); proc.wait(10)


def test_setting_selects_redis(tmp_path, monkeypatch):
    from mlscale_sdk.config import settings
    from mlscale_sdk import features as F
    (tmp_path / "pyproject.toml").write_text('[tool.mlscale]\nfeast_online = "redis://cache:6390/1"\n')
    monkeypatch.setenv("MLSCALE_HOME", str(tmp_path)); monkeypatch.delenv("MLSCALE_FEAST_ONLINE", raising=False)
    settings.cache_clear()
    try:
        assert F.online_store_config() == {"type": "redis", "connection_string": "cache:6390,db=1"}
        monkeypatch.setenv("MLSCALE_FEAST_ONLINE", "sqlite"); settings.cache_clear()
        assert F.online_store_config()["type"] == "sqlite"
    finally:
        settings.cache_clear()


@pytest.mark.slow
def test_out_of_core_with_spilling(tmp_path):
    "One worker limited to 512 MiB (of which ~300 MiB is the process itself) computes ~1.5 GiB of features (3x its limit, 7x what is left after the process itself) without dying or being restarted."
    import dask
    from distributed import Client, LocalCluster
    from mlscale_sdk import data, features as F
    rows, nparts, limit = 10_000_000, 200, 512 * 2**20
    tx = data.make_transactions(rows, npartitions=nparts, seed=2)
    cust = data.make_customers(rows // 50, seed=2)
    one = F._partition_features(tx.partitions[0].compute(), cust[["customer_id", "typical_spend"]])
    data_bytes = one.memory_usage(deep=True).sum() / len(one) * rows
    assert data_bytes > 2.8 * limit, (data_bytes, limit)
    cfg = {"distributed.worker.memory.target": 0.6, "distributed.worker.memory.spill": 0.7,
           "distributed.worker.memory.pause": 0.95, "distributed.worker.memory.terminate": 0.99}
    with dask.config.set(cfg), LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=limit, dashboard_address=None,
                                            local_directory=str(tmp_path / "spill")) as cluster, Client(cluster) as client:
        pid = client.run(os.getpid)
        out = F.compute_features(tx, cust, path=tmp_path / "f", client=client)
        assert client.run(os.getpid) == pid            # the same worker process: never killed and restarted
    import pyarrow.dataset as ds
    assert ds.dataset(out, format="parquet").count_rows() == rows


def test_cli_compute_apply_materialize_show(project):
    env = {"MLSCALE_HOME": str(project)}
    from mlscale_sdk import data
    data.write_transactions(n_rows=5_000, npartitions=2, seed=4)
    r = mlscale("features", "compute", "--workers", "1", env=env, timeout=240)
    assert "features written to" in r.stdout
    r = mlscale("features", "apply", env=env, timeout=240)
    assert "customer_txn" in r.stdout and "online store: sqlite" in r.stdout
    r = mlscale("features", "materialize", env=env, timeout=240)
    import re; assert re.search(r"materialized \d+ customers \(5,000 rows\)", r.stdout), r.stdout
    r = mlscale("features", "show", env=env, timeout=240)
    assert "customer_txn" in r.stdout and "materialized until 20" in r.stdout
    r = mlscale("features", "compute", "--source", str(project / "nope"), env=env, check=False)
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr
