"""The Dask compute engine and offline store for Feast, on two generated domains and a real 2-worker cluster.

Online values are compared with what Feast's own LocalComputeEngine (pandas backend) materializes from the same
repository definitions and data; historical values with an independent row-by-row point-in-time oracle.
"""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from feature_domains import (  # noqa: E402
    DEVICE_REPO,
    T0,
    H,
    iot_definitions,
    make_failures,
    make_orders,
    make_readings,
    newest_at,
    orders_definitions,
    repo_yaml,
    window_value,
)

pytestmark = pytest.mark.timeout(900)
END = T0 + 47 * H
START = T0 - H


@pytest.fixture(scope="module")
def client():
    "A real 2-worker, process-based Dask cluster; its client is the default for the module's tests."
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with Client(lc) as c:
            yield c


@pytest.fixture(scope="module")
def iot(tmp_path_factory, client):
    "IoT readings, our repository (Dask engine) and a reference one (Feast's local engine), both materialized."
    from distributed import get_task_stream
    from feast import FeatureStore

    base = tmp_path_factory.mktemp("iot")
    rd = make_readings(base / "readings")
    defs = iot_definitions(base / "readings")
    ours = FeatureStore(repo_path=str(repo_yaml(base / "ours", "dask", "iot")))
    ref = FeatureStore(repo_path=str(repo_yaml(base / "ref", "local", "iot")))
    ours.apply(defs)
    ref.apply(defs[:3])  # the local engine cannot compute time windows
    with get_task_stream(client) as stream:
        ours.materialize(START.to_pydatetime(), END.to_pydatetime())
    ref.materialize(START.to_pydatetime(), END.to_pydatetime())
    return {"base": base, "rows": rd, "ours": ours, "ref": ref, "stream": stream.data}


PLAIN = ["device_latest:temperature", "device_latest:vibration", "device_latest:site_id", "device_fahrenheit:temp_f"]
WINDOWS = ["device_windows:mean_temperature_3600s", "device_windows:max_vibration_21600s", "device_windows:n_1h"]


def test_materialize_runs_as_tasks_on_both_workers(iot, client):
    workers = {t["worker"] for t in iot["stream"]}
    assert len(iot["stream"]) > 10 and workers == set(client.scheduler_info()["workers"]), workers


def test_iot_online_equals_feast_local_engine(iot):
    rows = [{"device_id": d} for d in range(1, 15)]  # 13 and 14 have no readings
    a = iot["ours"].get_online_features(PLAIN, rows).to_df()
    b = iot["ref"].get_online_features(PLAIN, rows).to_df()
    pd.testing.assert_frame_equal(a, b)
    assert a["temperature"].notna().sum() == 12 and a.loc[a.device_id == 13, "temperature"].isna().all()


def test_iot_online_windows_equal_brute_force_at_materialization_end(iot):
    rd = iot["rows"]
    got = iot["ours"].get_online_features(WINDOWS, [{"device_id": d} for d in range(1, 13)]).to_df()
    for _, r in got.iterrows():
        d = int(r["device_id"])
        assert r["n_1h"] == window_value(rd, d, END, 3600, "temperature", "count")
        np.testing.assert_allclose(r["mean_temperature_3600s"], window_value(rd, d, END, 3600, "temperature", "mean"))
        np.testing.assert_allclose(r["max_vibration_21600s"], window_value(rd, d, END, 21600, "vibration", "max"))


def test_iot_training_frame_equals_point_in_time_oracle(iot):
    rd = iot["rows"]
    ev = make_failures(rd)
    got = iot["ours"].get_historical_features(ev, PLAIN + WINDOWS).to_df()
    assert got["device_id"].tolist() == ev["device_id"].tolist() and got["failed"].tolist() == ev["failed"].tolist()
    f = rd.assign(temp_f=(rd["temperature"] * 9 / 5 + 32).round(4))
    matched = 0
    for (_, e), (_, g) in zip(ev.iterrows(), got.iterrows()):
        t = e["event_timestamp"]
        row = newest_at(rd, {"device_id": e["device_id"]}, t, pd.Timedelta("2h"), created="created")
        frow = newest_at(f, {"device_id": e["device_id"]}, t, pd.Timedelta("3h"), created="created")
        if row is None:
            assert pd.isna(g["temperature"]) and pd.isna(g["site_id"])
        else:
            matched += 1
            assert (g["temperature"], g["vibration"], g["site_id"]) == (row["temperature"], row["vibration"],
                                                                       row["site_id"])
        assert (pd.isna(g["temp_f"]) if frow is None else g["temp_f"] == frow["temp_f"])
        assert g["n_1h"] == window_value(rd, e["device_id"], t, 3600, "temperature", "count")
        np.testing.assert_allclose(g["mean_temperature_3600s"],
                                   window_value(rd, e["device_id"], t, 3600, "temperature", "mean"))
        np.testing.assert_allclose(g["max_vibration_21600s"],
                                   window_value(rd, e["device_id"], t, 21600, "vibration", "max"))
    assert 20 < matched < len(ev)  # both kinds of events are there: joined and outside every ttl


def test_corrections_in_another_file_win_by_created_time(iot):
    "A correction (same event time, later created time, another Parquet file) is the row both sides use."
    rd = iot["rows"]
    dup = rd[rd.duplicated(["device_id", "ts"], keep=False)].sort_values("created").groupby(["device_id", "ts"]).last()
    (d, t), fix = next(iter(dup.iterrows()))
    got = iot["ours"].get_historical_features(pd.DataFrame({"device_id": [d], "event_timestamp": [t]}),
                                              ["device_latest:temperature"]).to_df()
    assert got["temperature"].iloc[0] == fix["temperature"]


def test_validation_failure_writes_nothing(iot):
    from feast import FeatureStore

    from mlscale_sdk.features.validate import FeatureValidationError

    base = iot["base"]
    fs = FeatureStore(repo_path=str(repo_yaml(base / "checked", "dask", "iotc")))
    defs = iot_definitions(base / "readings", checks={"temperature": {"nullable": False, "le": 1000}})
    fs.apply(defs[:2])
    fs.materialize(START.to_pydatetime(), (T0 + 10 * H).to_pydatetime())
    before = fs.get_online_features(PLAIN[:3], [{"device_id": d} for d in range(1, 13)]).to_df()
    strict = iot_definitions(base / "readings", checks={"temperature": {"le": 45}, "unique": ["device_id", "ts"]})
    fs.apply(strict[:2])
    with pytest.raises(FeatureValidationError) as e:
        fs.materialize((T0 + 10 * H).to_pydatetime(), END.to_pydatetime())
    msg = str(e.value)
    assert "device_latest" in msg and "temperature: less_than_or_equal_to(45) failed for" in msg, msg
    assert "device_id, ts" in msg or "unique" in msg.lower(), msg
    after = fs.get_online_features(PLAIN[:3], [{"device_id": d} for d in range(1, 13)]).to_df()
    pd.testing.assert_frame_equal(before, after)
    iv = fs.get_feature_view("device_latest").materialization_intervals
    assert max(e for _, e in iv) <= (T0 + 10 * H).to_pydatetime()


def test_apply_refuses_what_the_engine_cannot_compute(iot):
    from datetime import timedelta

    from feast import BatchFeatureView, FeatureStore, Field
    from feast.aggregation import Aggregation
    from feast.types import Float64

    from mlscale_sdk.features.definitions import FeatureDefinitionError, keep_aggregations

    base = iot["base"]
    fs = FeatureStore(repo_path=str(repo_yaml(base / "refuse", "dask", "iotr")))
    device, latest, _, _ = iot_definitions(base / "readings")
    fs.apply([device, latest])

    def view(agg, keep=True):
        v = BatchFeatureView(name="bad", entities=[device], source=latest.batch_source, mode="pandas", online=True,
                             udf=lambda d: d, aggregations=[agg], schema=[Field(name="sum_temperature", dtype=Float64)])
        return keep_aggregations(v) if keep else v

    cases = {"has no time_window": view(Aggregation(column="temperature", function="sum")),
             "count_distinct": view(Aggregation(column="temperature", function="count_distinct",
                                                time_window=timedelta(hours=1))),
             "registry does not store": view(Aggregation(column="temperature", function="sum",
                                                         time_window=timedelta(hours=1)), keep=False)}
    for needle, bad in cases.items():
        with pytest.raises(FeatureDefinitionError, match=needle):
            fs.apply([bad])
        fresh = FeatureStore(repo_path=fs.repo_path)
        names = {v.name for v in fresh.list_batch_feature_views() + fresh.list_feature_views()}
        assert names == {"device_latest"}, (needle, names)


def test_orders_composite_keys_equal_local_engine_and_oracle(tmp_path, client):
    from feast import FeatureStore
    from feature_domains import add_spend

    od = make_orders(tmp_path / "orders")
    defs = orders_definitions(tmp_path / "orders")
    ours = FeatureStore(repo_path=str(repo_yaml(tmp_path / "ours", "dask", "orders")))
    ref = FeatureStore(repo_path=str(repo_yaml(tmp_path / "ref", "local", "orders")))
    end = T0 + pd.Timedelta("11D")
    for fs in (ours, ref):
        fs.apply(defs)
        fs.materialize((T0 - H).to_pydatetime(), end.to_pydatetime())
    feats = ["customer_product:spend", "customer_product:prev_quantity", "customer_product:quantity"]
    keys = [{"customer_id": c, "product_id": f"sku-{p}"} for c in range(1, 17) for p in range(7)]
    a, b = (fs.get_online_features(feats, keys).to_df() for fs in (ours, ref))
    pd.testing.assert_frame_equal(a, b)
    assert a["spend"].notna().sum() > 50
    rng = np.random.default_rng(5)
    ev = pd.DataFrame({"customer_id": rng.integers(1, 17, 150), "product_id": [f"sku-{i}" for i in rng.integers(0, 7, 150)],
                       "event_timestamp": T0 + pd.to_timedelta(rng.uniform(0, 12 * 86400, 150).round(), unit="s")})
    got = ours.get_historical_features(ev, feats).to_df()
    full = add_spend(od)
    for (_, e), (_, g) in zip(ev.iterrows(), got.iterrows()):
        row = newest_at(full, {"customer_id": e["customer_id"], "product_id": e["product_id"]},
                        e["event_timestamp"], pd.Timedelta("3D"))
        assert pd.isna(g["spend"]) if row is None else (g["spend"], g["prev_quantity"]) == (row["spend"],
                                                                                            row["prev_quantity"])





def test_feast_cli_apply_and_materialize_incremental_use_the_engine(iot, tmp_path):
    "Feast's own CLI on a repository file: `feast apply`, `feast materialize-incremental`, then online values."
    from feast import FeatureStore

    repo = repo_yaml(tmp_path / "cli", "dask", "iotcli")
    (repo / "definitions.py").write_text(DEVICE_REPO.format(path=iot["base"] / "readings"))
    feast = str(Path(sys.executable).parent / "feast")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([feast, "apply"], cwd=repo, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for cmd in (["materialize", START.isoformat(), (T0 + 10 * H).isoformat()], ["materialize-incremental", END.isoformat()]):
        out = subprocess.run([feast, *cmd], cwd=repo, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0 and "materialized 12 entities of device_latest" in out.stderr + out.stdout, out.stderr
    rows = [{"device_id": d} for d in range(1, 13)]
    a = FeatureStore(repo_path=str(repo)).get_online_features(["device_latest:temperature"], rows).to_df()
    b = iot["ref"].get_online_features(["device_latest:temperature"], rows).to_df()
    pd.testing.assert_frame_equal(a, b)


def test_on_demand_view_runs_on_both_sides(iot):
    "Feast applies an OnDemandFeatureView on top of our offline store and our online values alike."
    from feature_domains import iot_definitions, iot_on_demand

    fs = iot["ours"]
    _, latest, _, _ = iot_definitions(iot["base"] / "readings")
    fs.apply([iot_on_demand(latest)])
    ev = pd.DataFrame({"device_id": [1, 2], "event_timestamp": [END, END], "setpoint": [30.0, 40.0]})
    hist = fs.get_historical_features(ev, ["device_latest:temperature", "over_setpoint:over_setpoint"]).to_df()
    np.testing.assert_allclose(hist["over_setpoint"], hist["temperature"] - ev["setpoint"])
    onl = fs.get_online_features(["device_latest:temperature", "over_setpoint:over_setpoint"],
                                 [{"device_id": 1, "setpoint": 30.0}, {"device_id": 2, "setpoint": 40.0}]).to_df()
    np.testing.assert_allclose(onl["over_setpoint"], onl["temperature"] - np.array([30.0, 40.0]))
    np.testing.assert_allclose(onl["temperature"], hist["temperature"])  # serving equals training at END


def test_engine_runs_on_the_registered_cluster_named_in_the_repo(iot, tmp_path, monkeypatch):
    "`batch_engine: {cluster: NAME}`: `feast materialize` in another process sends its tasks to that cluster."
    from mlscale_sdk import clusters as C
    from mlscale_sdk.config import settings

    monkeypatch.setenv("MLSCALE_HOME", str(tmp_path))
    settings.cache_clear()
    handle = C.start_cluster("local", name="featcluster", n_workers=1, set_as_default=False)
    try:
        repo = repo_yaml(tmp_path / "named", "dask", "iotnamed")
        yml = repo / "feature_store.yaml"
        yml.write_text(yml.read_text().replace("DaskComputeEngine\n", "DaskComputeEngine\n  cluster: featcluster\n"))
        (repo / "definitions.py").write_text(DEVICE_REPO.format(path=iot["base"] / "readings"))
        feast = str(Path(sys.executable).parent / "feast")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        for cmd in (["apply"], ["materialize", START.isoformat(), END.isoformat()]):
            out = subprocess.run([feast, *cmd], cwd=repo, capture_output=True, text=True, env=env, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
        prefixes = handle.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert any(p.startswith(("latest", "read_parquet", "read-parquet")) for p in prefixes), prefixes
    finally:
        handle.close()
        settings.cache_clear()


# --- the online write: from the workers ------------------------------------------------------------------------

def test_sqlite_rows_are_byte_for_byte_what_feasts_own_write_inserts(iot):
    "Our SQLite rows (built on the workers, one transaction) equal those Feast's local engine wrote, column by column."
    import sqlite3

    for view in ("device_latest", "device_fahrenheit"):
        got = []
        for fs in (iot["ours"], iot["ref"]):
            with sqlite3.connect(fs.config.online_store.path) as conn:
                got.append(conn.execute(f"SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                                        f"FROM iot_{view} ORDER BY entity_key, feature_name").fetchall())
        assert len(got[0]) >= 12 and got[0] == got[1], view


def before_shuffle(df):
    "A row-wise udf that fails if it is given a partition shuffled by entity (which has the `_part` column)."
    if "_part" in df.columns:
        raise ValueError("the udf saw a shuffled partition")
    return df.assign(temp_f=(df["temperature"] * 9 / 5 + 32).round(4))


def after_shuffle(df):
    "A udf that fails unless it is given a partition shuffled by entity."
    if "_part" not in df.columns:
        raise ValueError("the udf saw an unshuffled partition")
    return df.assign(temp_f=(df["temperature"] * 9 / 5 + 32).round(4))


def test_row_scoped_udf_views_skip_the_shuffle_and_equal_the_local_engine(iot):
    "A udf declared row by row is applied where each source partition lies (before any shuffle); same online values."
    from feast import FeatureStore
    from feature_domains import iot_rowwise

    from dataclasses import replace

    from mlscale_sdk.features.compute import latest_rows
    from mlscale_sdk.features.definitions import spec_of

    defs = iot_rowwise(iot["base"] / "readings")
    base = iot["base"] / "rowwise"
    ours = FeatureStore(repo_path=str(repo_yaml(base / "ours", "dask", "iotrows")))
    ref = FeatureStore(repo_path=str(repo_yaml(base / "ref", "local", "iotrows")))
    for fs in (ours, ref):
        fs.apply(defs)
        fs.materialize(START.to_pydatetime(), END.to_pydatetime())
    feats = ["fahrenheit_rows:temp_f", "hot_rows:temp_f"]
    rows = [{"device_id": d} for d in range(1, 15)]
    a, b = (fs.get_online_features(feats, rows, full_feature_names=True).to_df() for fs in (ours, ref))
    pd.testing.assert_frame_equal(a, b)
    hot, every = a["hot_rows__temp_f"], a["fahrenheit_rows__temp_f"]
    assert every.notna().sum() == 12 and hot.notna().sum() >= 1, a
    assert (hot.notna() & (hot != every)).any(), "no device whose newest row was dropped by the udf: a weak test"
    # where the udf runs: row scope on the source's own partitions (before any shuffle by entity, whose key
    # column `_part` it would see), entity scope after the shuffle
    rows_spec = spec_of(defs[1])
    assert len(latest_rows(replace(rows_spec, udf=before_shuffle), START, END)[0].compute()) == 12
    ent_spec = replace(rows_spec, udf=after_shuffle, udf_rows=False)
    assert len(latest_rows(ent_spec, START, END)[0].compute()) == 12
    with pytest.raises(Exception, match="the udf saw a shuffled partition"):
        latest_rows(replace(ent_spec, udf=before_shuffle), START, END)[0].compute()


def test_column_wise_sqlite_rows_equal_feasts_own_for_random_frames():
    "Seeded random frames of every fast type (nulls, extremes, unicode, composite keys): the bytes Feast writes."
    import pyarrow as pa
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.infra.online_stores.sqlite import adapt_datetime_epoch
    from feast.repo_config import RepoConfig
    from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

    from mlscale_sdk.features.engine import online_protos, sqlite_rows
    from mlscale_sdk.features.online_rows import sqlite_rows_of

    ents = [Entity(name="k1", join_keys=["k1"], value_type=ValueType.INT64),
            Entity(name="k2", join_keys=["k2"], value_type=ValueType.STRING)]
    types = {"d": Float64, "f": Float32, "i": Int64, "i32": Int32, "s": String, "b": Bool, "inull": Int64,
             "t": UnixTimestamp}
    fv = FeatureView(name="v", entities=ents, ttl=timedelta(days=1),
                     source=FileSource(path="x.parquet", timestamp_field="ts", created_timestamp_column="created"),
                     schema=[Field(name="k1", dtype=Int64), Field(name="k2", dtype=String),
                             *[Field(name=c, dtype=t) for c, t in types.items()]])
    cfg = RepoConfig(project="p", registry="r.db", provider="local", entity_key_serialization_version=3)
    texts = np.array(["", "x", "ü€😀", "a" * 300, "0"], dtype=object)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 400))
        df = pd.DataFrame({
            "k1": rng.integers(-2**62, 2**62, n), "k2": [f"s{i}é" for i in rng.integers(0, 10**6, n)],
            "ts": T0 + pd.to_timedelta(rng.integers(-10**17, 10**15, n), unit="ns"),
            "created": pd.Timestamp("1969-12-31 23:59:59.5") + pd.to_timedelta(rng.integers(0, 10**9, n), unit="ns"),
            "d": np.where(rng.random(n) < .1, np.nan, rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)),
            "f": rng.standard_normal(n).astype("float32"), "i": rng.integers(-2**63, 2**63 - 1, n),
            "i32": rng.integers(-2**31, 2**31 - 1, n).astype("int32"),
            "s": np.where(rng.random(n) < .1, None, texts[rng.integers(0, len(texts), n)]), "b": rng.random(n) < .5,
            "inull": pd.array(np.where(rng.random(n) < .2, None, rng.integers(0, 100, n)), dtype="Int64"),
            "t": T0 + pd.to_timedelta(rng.integers(0, 10**9, n), unit="s")})
        feast_rows = [(k, c, v, t, adapt_datetime_epoch(a), adapt_datetime_epoch(b))
                      for k, c, v, t, a, b in sqlite_rows(online_protos(df, fv), cfg)]
        ours = sqlite_rows_of(pa.Table.from_pandas(df, preserve_index=False).to_batches()[0], fv, cfg)
        assert ours == sorted(feast_rows, key=lambda r: (r[0], r[1])), seed


def failing_udf(df):
    "A udf that fails on the partition holding device 7."
    if (df["device_id"] == 7).any():
        raise ValueError("bad reading of device 7")
    return df.assign(temp_f=(df["temperature"] * 9 / 5 + 32).round(4))


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    "A real redis-server on a free loopback port (skipped where it is not installed)."
    import shutil
    import socket
    import time

    server = shutil.which("redis-server") or next((p for p in ["/usr/bin/redis-server"] if os.path.exists(p)), None)
    if server is None:
        pytest.skip("redis-server is not installed (run .ci/install-system.sh)")
    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def redis_repo(path: Path, project: str, port: int) -> Path:
    "Our repository (Dask engine and offline store) with a Redis online store."
    rp = repo_yaml(path, "dask", project)
    yml = rp / "feature_store.yaml"
    yml.write_text(yml.read_text().replace(f"  type: sqlite\n  path: {rp}/online.db\n",
                                           f"  type: redis\n  connection_string: 127.0.0.1:{port},db=0\n"))
    assert "type: redis" in yml.read_text()
    return rp


def redis_snapshot(port: int) -> dict:
    "Every key of the Redis database and its hash."
    import redis

    r = redis.Redis(port=port)
    return {k: r.hgetall(k) for k in r.scan_iter()}


def test_redis_materialize_writes_from_the_workers_and_equals_the_local_engine(iot, client, redis_port, tmp_path):
    from distributed import get_task_stream
    from feast import FeatureStore

    fs = FeatureStore(repo_path=str(redis_repo(tmp_path / "redis", "iotredis", redis_port)))
    fs.apply(iot_definitions(iot["base"] / "readings"))
    with get_task_stream(client) as stream:
        fs.materialize(START.to_pydatetime(), END.to_pydatetime())
    writes = [t for t in stream.data if str(t["key"]).startswith("online_write-")]
    workers = set(client.scheduler_info()["workers"])
    # each view's parts are written by the workers themselves (none in this process): 3 views, >= 4 parts each
    assert len(writes) >= 12 and {t["worker"] for t in writes} <= workers and len({t["worker"] for t in writes}) == 2
    rows = [{"device_id": d} for d in range(1, 15)]
    a = fs.get_online_features(PLAIN, rows).to_df()
    b = iot["ref"].get_online_features(PLAIN, rows).to_df()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(fs.get_online_features(WINDOWS, rows).to_df(),
                                  iot["ours"].get_online_features(WINDOWS, rows).to_df())
    assert any(k.startswith(b"iotredis") or b"iotredis" in k for k in redis_snapshot(redis_port))


def test_redis_failure_in_one_partition_writes_nothing_and_names_it(iot, client, redis_port, tmp_path):
    "A udf failing in one partition: the error names the view and the part, Redis is unchanged, no interval recorded."
    from feast import BatchFeatureView, FeatureStore, Field
    from feast.types import Float64, Int64

    from mlscale_sdk.features.engine import MaterializationError

    fs = FeatureStore(repo_path=str(redis_repo(tmp_path / "redisfail", "iotfail", redis_port)))
    device, latest, fahrenheit, _ = iot_definitions(iot["base"] / "readings")
    fs.apply([device, latest, fahrenheit])
    fs.materialize(START.to_pydatetime(), (T0 + 10 * H).to_pydatetime())
    before = redis_snapshot(redis_port)
    # a new name: Feast's apply keeps a stored view whose only change is its udf (FeatureView.__eq__ skips it)
    bad = BatchFeatureView(name="device_fahrenheit_v2", entities=[device], source=latest.batch_source, mode="pandas",
                           online=True, udf=failing_udf, ttl=timedelta(hours=3),
                           schema=[Field(name="device_id", dtype=Int64), Field(name="temp_f", dtype=Float64)])
    fs.apply([bad])
    with pytest.raises(MaterializationError, match=r"view 'device_fahrenheit_v2' failed in part \d+ of \d+: "
                                                   r"ValueError: bad reading of device 7"):
        fs.materialize((T0 + 10 * H).to_pydatetime(), END.to_pydatetime(), feature_views=["device_fahrenheit_v2"])
    assert redis_snapshot(redis_port) == before
    assert fs.get_feature_view("device_fahrenheit_v2").materialization_intervals == []


def test_a_store_failing_while_workers_write_is_reported_with_the_view_and_part(iot, client, tmp_path):
    "Redis unreachable when the workers write: the error names the view and the part; nothing claims success."
    import socket

    from feast import FeatureStore

    from mlscale_sdk.features.engine import MaterializationError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once the socket is closed
    fs = FeatureStore(repo_path=str(redis_repo(tmp_path / "redisdead", "iotdead", dead)))
    device, latest, _, _ = iot_definitions(iot["base"] / "readings")
    fs.apply([device, latest])
    with pytest.raises(MaterializationError, match=r"view 'device_latest', part \d+: writing \d+ entities to the "
                                                   r"online store failed: ConnectionError"):
        fs.materialize(START.to_pydatetime(), END.to_pydatetime())
    assert not fs.get_feature_view("device_latest").materialization_intervals
