"""Features of the demo's example definitions (templates/feature_repo/transactions.py) through the public API:
apply, point-in-time training frame (hand-computed), materialize and online lookup (SQLite and a real Redis),
validation failure leaving the store unchanged, clear errors."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import free_port, wait_for

H = pd.Timedelta("1h")
T0 = pd.Timestamp("2026-01-05 10:00")  # a Monday
# (customer_id, ts, amount); customer 1 has history over two days, customer 2 one transaction, customer 3 none
HAND = [(1, T0, 10.0), (1, T0 + 0.5 * H, 20.0), (1, T0 + 2 * H, 40.0), (1, T0 + 25 * H, 100.0), (2, T0 + 0.25 * H, 5.0)]
CUSTOMERS = pd.DataFrame({"customer_id": [1, 2], "typical_spend": [30.0, 8.0], "since": T0 - 24 * H})
MODEL_FEATURES = {  # the demo model's 22 features (see the template's docstring for the five renamed ones)
    *(f"{k}_{w}" for w in ("1h", "24h", "7d") for k in ("txn_count", "amount_sum", "amount_mean")),
    "typical_spend",
    "txn_amount",
    "log_amount",
    "hour",
    "day_of_week",
    "merchant_category_code",
    "channel_code",
    "is_card_present",
    "is_country_mismatch",
    "amount_to_mean_7d",
    "amount_to_typical",
    "age_years",
    "tenure_days",
}
REQUEST = dict(
    merchant_category="travel",
    channel="online",
    card_present=0,
    country_mismatch=1,
    customer_age=40,
    account_age_days=100,
)


def _tx(rows) -> pd.DataFrame:
    "Hand-made transactions in the generator's schema."
    df = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    return df.assign(transaction_id=np.arange(1, len(df) + 1), **REQUEST, is_fraud=0)


def _write(df: pd.DataFrame, name: str):
    "Replace the Parquet folder `name` of the project's data folder with `df`."
    from mlscale_sdk.config import settings

    d = settings().data_dir / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    df.to_parquet(d / "part-0.parquet", index=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    "A project with the hand-made data, the example definitions copied and applied (SQLite online store)."
    from mlscale_sdk import features as F
    from mlscale_sdk.config import settings
    from mlscale_sdk.features.examples import add_example

    home = tmp_path_factory.mktemp("featproj")
    saved = {k: os.environ.get(k) for k in ("MLSCALE_HOME", "MLSCALE_FEAST_ONLINE")}
    os.environ["MLSCALE_HOME"] = str(home)
    os.environ.pop("MLSCALE_FEAST_ONLINE", None)
    settings.cache_clear()
    sys.modules.pop("transactions", None)  # apply_repo imports the repo file as a module, once per process
    try:
        _write(_tx(HAND), "transactions")
        _write(CUSTOMERS, "customers")
        add_example("transactions")
        names = F.apply_repo()
        yield home, names
    finally:
        sys.modules.pop("transactions", None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings.cache_clear()


def test_repo_layout_and_definitions(repo):
    from mlscale_sdk import features as F
    from mlscale_sdk.features.examples import example_file, service_features

    home, names = repo
    rp = home / ".mlscale" / "feature_repo"
    assert (rp / "transactions.py").read_text() == example_file("transactions").read_text()
    yaml = (rp / "feature_store.yaml").read_text()
    assert "DaskOfflineStore" in yaml and "DaskComputeEngine" in yaml and "type: sqlite" in yaml
    assert {"customer", "customer_windows", "customer_profile", "transaction_features", "fraud_model"} <= set(names)
    info = F.show()
    assert info["entities"] == ["customer"]
    views = {v["name"]: v for v in info["feature_views"]}
    assert set(views) == {"customer_windows", "customer_profile"}
    assert views["customer_windows"]["source"] == str(home / ".mlscale" / "data" / "transactions")
    cols = service_features("fraud_model")
    assert len(cols) == 22 and set(cols) == MODEL_FEATURES


def test_point_in_time_training_frame_hand_computed(repo):
    from mlscale_sdk import features as F

    t = [T0 + H, T0 + 2 * H, T0 - H, T0 + 0.2 * H, T0 + 0.25 * H, T0 + 24.9 * H, T0 + 25 * H, T0]
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 1, 1, 3],
            "label_ts": t,
            "amount": [50.0, 40.0, 50.0, 50.0, 5.0, 50.0, 100.0, 7.0],
            **REQUEST,
            "y": [0, 1, 0, 1, 0, 1, 1, 0],
        }
    )
    tf = F.training_frame(labels, "fraud_model", timestamp="label_ts")
    # by hand: each window is (t - w, t] at the label's time; a transaction at exactly t counts, later ones never
    #   c1 11:00          1h (10:00, 11:00] = {20}        24h = {10, 20}
    #   c1 12:00 (= txn)  1h = {40}                       24h = {10, 20, 40}
    #   c1 09:00, c2 10:12, c3 (no transactions): nothing, counts and sums 0
    #   c2 10:15 (= txn)  {5}
    #   c1 next day 10:54 1h = {}                         24h (day 1 10:54, ...] = {40}
    #   c1 next day 11:00 1h = {100}                      24h = {40, 100}; 7d = {10, 20, 40, 100}
    exp = pd.DataFrame(
        {
            "txn_count_1h": [1, 1, 0, 0, 1, 0, 1, 0],
            "amount_sum_1h": [20.0, 40.0, 0, 0, 5.0, 0, 100.0, 0],
            "txn_count_24h": [2, 3, 0, 0, 1, 1, 2, 0],
            "amount_sum_24h": [30.0, 70.0, 0, 0, 5.0, 40.0, 140.0, 0],
            "txn_count_7d": [2, 3, 0, 0, 1, 3, 4, 0],
            "amount_mean_7d": [15.0, 70 / 3, np.nan, np.nan, 5.0, 70 / 3, 42.5, np.nan],
            "typical_spend": [30.0, 30.0, 30.0, 8.0, 8.0, 30.0, 30.0, np.nan],
        }
    )
    assert tf["y"].tolist() == labels["y"].tolist() and tf["customer_id"].tolist() == labels["customer_id"].tolist()
    assert (
        tf.columns.is_unique
        and pd.to_datetime(tf["label_ts"], utc=True).tolist() == pd.to_datetime(labels["label_ts"], utc=True).tolist()
    )
    pd.testing.assert_frame_equal(tf[exp.columns].astype(float), exp.astype(float), check_exact=False)
    # the transaction's own features, and its amount against its week and the customer's typical spend
    g = tf.iloc[6]
    assert (g["hour"], g["day_of_week"], g["txn_amount"]) == (11, 1, 100.0)
    assert g["log_amount"] == pytest.approx(np.log1p(100.0))
    assert g["amount_to_mean_7d"] == pytest.approx(100 / 42.5) and g["amount_to_typical"] == pytest.approx(100 / 30)
    assert (g["merchant_category_code"], g["channel_code"], g["is_card_present"], g["is_country_mismatch"]) == (
        3,
        1,
        0,
        1,
    )  # travel and online in the generator's category order
    assert (g["age_years"], g["tenure_days"]) == (40, 100)
    assert np.isnan(tf.iloc[7]["amount_to_typical"])  # customer 3 has no profile


def test_materialize_incremental_and_online(repo):
    from mlscale_sdk import features as F

    refs = ["customer_windows:txn_count_1h", "customer_windows:amount_sum_24h", "customer_profile:typical_spend"]
    m1 = F.materialize(end=T0 + H, start=T0 - 48 * H)
    assert {v["view"]: v["entities"] for v in m1.views} == {"customer_windows": 2, "customer_profile": 2}
    got = F.online([{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 99}], refs)
    # windows as of the end of the materialization, 11:00: c1 1h {20}, 24h {10, 20}; c2 {5}
    assert got["txn_count_1h"].tolist()[:2] == [1, 1] and pd.isna(got["txn_count_1h"].iloc[2])
    assert got["amount_sum_24h"].tolist()[:2] == [30.0, 5.0] and got["typical_spend"].tolist()[:2] == [30.0, 8.0]
    m2 = F.materialize(end=T0 + 26 * H)  # incremental: from where the last run of each view stopped
    # c2's only transaction (day 1 10:15) has left its 1h and 24h windows: its values are refreshed too
    assert {v["view"]: v["entities"] for v in m2.views} == {"customer_windows": 2, "customer_profile": 0}
    c2 = F.online([{"customer_id": 2}], refs).iloc[0]
    assert (c2["txn_count_1h"], c2["amount_sum_24h"]) == (0, 0.0)
    row = {"customer_id": 1, "event_timestamp": T0 + 26 * H, "amount": 60.0, **REQUEST}
    served = F.online([row], "fraud_model")
    # c1 as of day 2 12:00: 1h (11:00, 12:00] = {} (100 at 11:00 is just out); 24h (day 1 12:00, ...] = {100};
    # 7d = {10, 20, 40, 100}
    s = served.iloc[0]
    assert (s["txn_count_1h"], s["amount_sum_24h"], s["txn_count_7d"], s["typical_spend"]) == (0, 100.0, 4, 30.0)
    assert (s["hour"], s["txn_amount"]) == (12, 60.0) and s["amount_to_typical"] == pytest.approx(2.0)
    assert MODEL_FEATURES <= set(served.columns)
    assert {v["name"]: v["materialized_until"] for v in F.show()["feature_views"]}["customer_windows"] is not None


def test_validation_failure_leaves_the_store_unchanged(repo):
    from mlscale_sdk import features as F
    from mlscale_sdk.features.validate import FeatureValidationError

    refs = ["customer_windows:txn_count_1h", "customer_windows:amount_sum_24h"]
    before = F.online([{"customer_id": 1}, {"customer_id": 2}], refs)
    until = {v["name"]: v["materialized_until"] for v in F.show()["feature_views"]}
    bad = _tx(HAND + [(1, T0 + 25.5 * H, -7.0), (2, T0 + 25.5 * H, np.nan)])  # a negative and a missing amount
    _write(bad, "transactions")
    try:
        with pytest.raises(FeatureValidationError) as e:
            F.materialize(end=T0 + 27 * H, views=["customer_windows"])
        msg = str(e.value)
        assert "customer_windows" in msg and "amount" in msg and "-7.0" in msg
        assert "not_nullable" in msg or "null" in msg.lower()
        pd.testing.assert_frame_equal(F.online([{"customer_id": 1}, {"customer_id": 2}], refs), before)
        assert {v["name"]: v["materialized_until"] for v in F.show()["feature_views"]} == until
    finally:
        _write(_tx(HAND), "transactions")


def test_bad_requests_fail_clearly(repo):
    from mlscale_sdk import features as F
    from mlscale_sdk.features.examples import ExampleNotFoundError, add_example, service_features

    with pytest.raises(F.FeatureNotFoundError, match="no_such_feature"):
        F.online([{"customer_id": 1}], ["no_such_feature"])
    with pytest.raises(F.FeatureNotFoundError, match="no feature service 'nope'"):
        service_features("nope")
    with pytest.raises(ValueError, match="needs a time column"):
        F.training_frame(pd.DataFrame({"customer_id": [1]}), "fraud_model")
    with pytest.raises(ExampleNotFoundError, match="shipped: transactions"):
        add_example("nope")
    with pytest.raises(ValueError, match="feast_online"):
        F.online_store_config("memcached://x")


def test_redis_online_store(repo, tmp_path):
    server = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if server is None:
        pytest.skip("redis-server is not installed (run .ci/install-system.sh)")
    from mlscale_sdk import features as F
    from mlscale_sdk.features.examples import add_example

    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        import redis

        r = redis.Redis(port=port)

        def up():
            try:
                return r.ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_for(up, timeout=20, what="redis-server")
        rp = F.init_repo(tmp_path / "repo", online=f"redis://127.0.0.1:{port}/0")
        assert "type: redis" in (rp / "feature_store.yaml").read_text()
        add_example("transactions", repo=rp)
        assert "fraud_model" in F.apply_repo(rp)
        m = F.materialize(start=T0 - 48 * H, end=T0 + 26 * H, repo=rp)
        assert {v["view"]: v["entities"] for v in m.views} == {"customer_windows": 2, "customer_profile": 2}
        assert r.dbsize() > 0  # the values really are in Redis
        got = F.online(
            [{"customer_id": 1}, {"customer_id": 2}],
            ["customer_windows:txn_count_24h", "customer_windows:amount_sum_24h", "customer_profile:typical_spend"],
            repo=rp,
        )
        # as of day 2 12:00: c1 24h = {100}; c2's only transaction (day 1 10:15) is out of its 24h
        assert got["txn_count_24h"].tolist() == [1, 0] and got["amount_sum_24h"].tolist() == [100.0, 0.0]
        assert got["typical_spend"].tolist() == [30.0, 8.0]
    finally:
        proc.terminate()
        proc.wait(10)


def test_setting_selects_redis(tmp_path, monkeypatch):
    from mlscale_sdk import features as F
    from mlscale_sdk.config import settings

    (tmp_path / "pyproject.toml").write_text('[tool.mlscale]\nfeast_online = "redis://cache:6390/1"\n')
    monkeypatch.setenv("MLSCALE_HOME", str(tmp_path))
    monkeypatch.delenv("MLSCALE_FEAST_ONLINE", raising=False)
    settings.cache_clear()
    try:
        assert F.online_store_config() == {"type": "redis", "connection_string": "cache:6390,db=1"}
        monkeypatch.setenv("MLSCALE_FEAST_ONLINE", "sqlite")
        settings.cache_clear()
        assert F.online_store_config()["type"] == "sqlite"
    finally:
        settings.cache_clear()
