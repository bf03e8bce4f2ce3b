"""Two generated data domains besides the demo's transactions, with their Feast definitions and brute-force oracles.

IoT readings: device and site entities, readings every few minutes in several Parquet files (one per day),
re-sent corrections (same event time, later created time), a failure label.
Orders: customer and product entities (composite join key), order lines, prices.
"""
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")
H = pd.Timedelta("1h")


def make_readings(path: Path, n_devices: int = 12, hours: int = 48, seed: int = 0) -> pd.DataFrame:
    "IoT readings written as one Parquet file per day under `path`; returns all rows."
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(1, n_devices + 1):
        n = int(hours * 60 / rng.integers(8, 20))
        ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, hours * 3600, n)).round(), unit="s")
        base = 40 + 5 * rng.standard_normal()
        temp = base + 3 * np.sin(np.arange(n) / 9) + rng.standard_normal(n)
        rows.append(pd.DataFrame({"device_id": d, "site_id": f"site-{d % 4}", "ts": ts, "temperature": temp.round(3),
                                  "vibration": np.abs(rng.gamma(2.0, 0.5, n)).round(4), "created": ts + pd.Timedelta("30s")}))
    df = pd.concat(rows, ignore_index=True)
    fix = df.sample(frac=0.05, random_state=seed).assign(  # corrections: same event time, created later
        temperature=lambda d: (d["temperature"] + 10).round(3), created=lambda d: d["created"] + pd.Timedelta("5min"))
    df = pd.concat([df, fix], ignore_index=True)
    path.mkdir(parents=True, exist_ok=True)
    for day, part in df.groupby(df["ts"].dt.floor("D")):
        # a correction lands in the file of the day it was sent, which may differ from its reading's file
        part.sample(frac=1, random_state=seed).to_parquet(path / f"day={day:%Y%m%d}.parquet", index=False)
    return df


def make_failures(readings: pd.DataFrame, n: int = 60, seed: int = 1) -> pd.DataFrame:
    "Label events: a device at a time, failed or not, some before any reading and some after the last."
    rng = np.random.default_rng(seed)
    dev = rng.integers(1, readings["device_id"].max() + 2, n)  # one device id that has no readings
    ts = T0 + pd.to_timedelta(rng.uniform(-3 * 3600, 52 * 3600, n).round(), unit="s")
    ex = readings.sample(5, random_state=seed)  # events exactly at a reading's time
    ev = pd.DataFrame({"device_id": np.r_[dev, ex["device_id"]], "event_timestamp": list(ts) + list(ex["ts"])})
    return ev.assign(failed=rng.integers(0, 2, len(ev)))


def make_orders(path: Path, n_customers: int = 15, n_products: int = 6, n: int = 900, seed: int = 2) -> pd.DataFrame:
    "Order lines (customer, product, time, quantity, unit price) in two Parquet files."
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer_id": rng.integers(1, n_customers + 1, n),
        "product_id": [f"sku-{i}" for i in rng.integers(0, n_products, n)],
        "ts": (T0 + pd.to_timedelta(rng.uniform(0, 10 * 86400, n).round(), unit="s")),
        "quantity": rng.integers(1, 6, n), "unit_price": rng.choice([2.5, 4.0, 9.99, 20.0], n)})
    path.mkdir(parents=True, exist_ok=True)
    half = n // 2
    df.iloc[:half].to_parquet(path / "a.parquet", index=False)
    df.iloc[half:].to_parquet(path / "b.parquet", index=False)
    return df


def add_spend(df: pd.DataFrame) -> pd.DataFrame:
    "Order lines with the line's spend and the customer-product's previous quantity (a lag over the entity's rows)."
    df = df.sort_values(["customer_id", "product_id", "ts"], kind="stable")
    prev = df.groupby(["customer_id", "product_id"])["quantity"].shift(1).fillna(0).astype("int64")
    return df.assign(spend=(df["quantity"] * df["unit_price"]).round(4), prev_quantity=prev)


def to_fahrenheit(df: pd.DataFrame) -> pd.DataFrame:
    "Readings in Fahrenheit."
    return df.assign(temp_f=(df["temperature"] * 9 / 5 + 32).round(4))


def iot_definitions(path: Path, checks: dict | None = None):
    "Entities and views of the IoT domain over the readings at `path`."
    from feast import BatchFeatureView, Entity, FeatureView, Field, FileSource, ValueType
    from feast.aggregation import Aggregation
    from feast.types import Float64, Int64, String

    from mlscale_sdk.features.definitions import keep_aggregations
    from mlscale_sdk.features.validate import checks_tags

    device = Entity(name="device", join_keys=["device_id"], value_type=ValueType.INT64)
    src = FileSource(name="readings", path=str(path), timestamp_field="ts", created_timestamp_column="created")
    latest = FeatureView(name="device_latest", entities=[device], source=src, ttl=timedelta(hours=2),
                         schema=[Field(name="device_id", dtype=Int64), Field(name="temperature", dtype=Float64),
                                 Field(name="vibration", dtype=Float64), Field(name="site_id", dtype=String)],
                         tags=checks_tags(checks))
    fahrenheit = BatchFeatureView(name="device_fahrenheit", entities=[device], source=src, mode="pandas", online=True,
                                  udf=to_fahrenheit, ttl=timedelta(hours=3),
                                  schema=[Field(name="device_id", dtype=Int64), Field(name="temp_f", dtype=Float64)])
    aggs = [Aggregation(column="temperature", function="mean", time_window=timedelta(hours=1)),
            Aggregation(column="vibration", function="max", time_window=timedelta(hours=6)),
            Aggregation(column="temperature", function="count", time_window=timedelta(hours=1), name="n_1h")]
    hourly = keep_aggregations(BatchFeatureView(name="device_windows", entities=[device], source=src, mode="pandas", online=True, udf=lambda d: d,
                              aggregations=aggs, ttl=timedelta(days=1),
                              schema=[Field(name="device_id", dtype=Int64),
                                      Field(name="mean_temperature_3600s", dtype=Float64),
                                      Field(name="max_vibration_21600s", dtype=Float64), Field(name="n_1h", dtype=Int64)]))
    return [device, latest, fahrenheit, hourly]


def orders_definitions(path: Path):
    "Entities and a composite-key view of the orders domain."
    from feast import BatchFeatureView, Entity, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    src = FileSource(name="orders", path=str(path), timestamp_field="ts")
    lines = BatchFeatureView(name="customer_product", entities=[customer, product], source=src, mode="pandas", online=True,
                             udf=add_spend, ttl=timedelta(days=3),
                             schema=[Field(name="customer_id", dtype=Int64), Field(name="spend", dtype=Float64),
                                     Field(name="prev_quantity", dtype=Int64), Field(name="quantity", dtype=Int64)])
    return [customer, product, lines]


# --- independent oracles (row by row, no shared code with mlscale) -------------------------------------------

def newest_at(rows: pd.DataFrame, keys: dict, t, ttl, ts="ts", created=None):
    "The newest row of `rows` matching `keys` with ts <= t (and >= t - ttl), created time breaking ties; or None."
    m = np.ones(len(rows), bool)
    for k, v in keys.items():
        m &= (rows[k] == v).to_numpy()
    m &= (rows[ts] <= t).to_numpy()
    if ttl is not None:
        m &= (rows[ts] >= t - ttl).to_numpy()
    cand = rows[m]
    if not len(cand):
        return None
    order = [ts] + ([created] if created else [])
    return cand.sort_values(order, kind="stable").iloc[-1]


def window_value(rows: pd.DataFrame, key: int, t, seconds: float, column: str, fn: str):
    "The aggregate of `column` over a device's rows with ts in (t - seconds, t]."
    m = (rows["device_id"] == key) & (rows["ts"] > t - pd.Timedelta(seconds=seconds)) & (rows["ts"] <= t)
    vals = rows.loc[m, column].dropna()
    if fn == "count":
        return len(vals)
    if not len(vals):
        return 0.0 if fn == "sum" else np.nan
    return float(getattr(vals, fn)())


def repo_yaml(path: Path, engine: str, project: str) -> Path:
    "A feature repository at `path` with the mlscale Dask engine and store (`engine='dask'`) or Feast's local ones."
    path.mkdir(parents=True, exist_ok=True)
    if engine == "dask":
        extra = ("batch_engine:\n  type: mlscale_sdk.features.engine.DaskComputeEngine\n"
                 "offline_store:\n  type: mlscale_sdk.features.offline.DaskOfflineStore\n")
    else:
        extra = "batch_engine:\n  type: local\n  backend: pandas\noffline_store:\n  type: file\n"
    (path / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: {path}/registry.db\n"
        f"online_store:\n  type: sqlite\n  path: {path}/online.db\n{extra}entity_key_serialization_version: 3\n")
    return path


def iot_on_demand(latest):
    "An on-demand view: how far the device's latest temperature is above a setpoint sent with the request."
    from feast import Field, RequestSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64

    req = RequestSource(name="setpoint", schema=[Field(name="setpoint", dtype=Float64)])

    @on_demand_feature_view(sources=[latest, req], schema=[Field(name="over_setpoint", dtype=Float64)], mode="pandas")
    def over_setpoint(inputs):
        import pandas as pd

        return pd.DataFrame({"over_setpoint": inputs["temperature"] - inputs["setpoint"]})

    return over_setpoint


# a repository file with one view over the IoT readings (the users' way: Feast definitions in a Python file)
DEVICE_REPO = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64
device = Entity(name="device", join_keys=["device_id"], value_type=ValueType.INT64)
readings = FileSource(name="readings", path="{path}", timestamp_field="ts", created_timestamp_column="created")
device_latest = FeatureView(name="device_latest", entities=[device], source=readings, ttl=timedelta(hours=2),
                            schema=[Field(name="device_id", dtype=Int64), Field(name="temperature", dtype=Float64)])
'''


def hot_fahrenheit(df: pd.DataFrame) -> pd.DataFrame:
    "Readings in Fahrenheit, only those of an even whole °C (a row-by-row udf that also drops rows)."
    return to_fahrenheit(df[df["temperature"].round().astype("int64") % 2 == 0])


def iot_rowwise(path: Path):
    "The entity and two udf views declared row by row (`mlscale.udf_scope: rows`): one keeps every row, one drops some."
    from feast import BatchFeatureView, Entity, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    device = Entity(name="device", join_keys=["device_id"], value_type=ValueType.INT64)
    src = FileSource(name="readings", path=str(path), timestamp_field="ts", created_timestamp_column="created")
    schema = [Field(name="device_id", dtype=Int64), Field(name="temp_f", dtype=Float64)]
    return [device] + [BatchFeatureView(name=name, entities=[device], source=src, mode="pandas", online=True, udf=udf,
                             ttl=timedelta(hours=3), schema=schema, tags={"mlscale.udf_scope": "rows"})
            for name, udf in (("fahrenheit_rows", to_fahrenheit), ("hot_rows", hot_fahrenheit))]
