"""Example Feast definitions: the features of mlscale's fraud demo over card transactions.

Plain Feast objects, read by `feast apply` as well as by `mlscale_sdk.features.apply_repo()`. Copy this file into
your feature repository (`mlscale_sdk.features.add_example("transactions")` does it) and run `feast apply` or
`ms.features.apply_repo()`.

Data (under the project's data folder, `mlscale_sdk.config.settings().data_dir`; written by
`mlscale_sdk.features.examples.write_transactions_data`):
- `transactions/`: one row per card transaction: transaction_id, ts, customer_id, amount, merchant_category,
  channel, card_present, country_mismatch, customer_age, account_age_days (and the label is_fraud).
- `customers/`: one row per customer: customer_id, typical_spend, and `since`, when the row became valid (the start
  of the data).

Checks declared with the views (`features.validate`): amounts present and in [0, 1e7], typical spend positive; a
materialization whose rows fail them writes nothing.

What a fraud model trains on is the feature service `fraud_model`:
- `customer_windows`: for each transaction time t, count, sum and mean of the customer's amounts over `(t-w, t]`
  for w in 1h, 24h, 7d (the transaction itself counts): txn_count_1h, amount_sum_1h, amount_mean_1h, ...
- `customer_profile`: the customer's typical_spend.
- `transaction_features` (on demand, from the transaction being scored, sent as request data): txn_amount,
  log_amount, hour, day_of_week, merchant_category_code, channel_code, is_card_present, is_country_mismatch,
  amount_to_mean_7d, amount_to_typical, age_years, tenure_days.

Five of those pass a request column through under a feature name of its own (txn_amount = amount, is_card_present
= card_present, is_country_mismatch = country_mismatch, age_years = customer_age, tenure_days = account_age_days):
a feature named like the request column would come out of a training frame twice, once from the events and once
from the view. With them the service lists everything the model reads: 22 features, the demo's earlier set.
"""

from datetime import timedelta
from pathlib import Path

from feast import BatchFeatureView, Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.aggregation import Aggregation
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

from mlscale_sdk.config import settings
from mlscale_sdk.features.definitions import keep_aggregations
from mlscale_sdk.features.examples import at_microseconds  # a udf the Dask workers can import
from mlscale_sdk.features.validate import checks_tags

DATA = Path(settings().data_dir)  # the project's data folder (MLSCALE_DATA_DIR or [tool.mlscale] data_dir)
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64, description="a card holder")

transactions = FileSource(
    name="transactions",
    path=str(DATA / "transactions"),
    timestamp_field="ts",
    description="card transactions, one row each",
)
customers = FileSource(
    name="customers",
    path=str(DATA / "customers"),
    timestamp_field="since",
    description="customer attributes a bank knows",
)


_aggs = [
    Aggregation(column="amount", function=fn, time_window=w, name=f"{out}_{name}")
    for name, w in WINDOWS.items()
    for fn, out in (("count", "txn_count"), ("sum", "amount_sum"), ("mean", "amount_mean"))
]

customer_windows = keep_aggregations(
    BatchFeatureView(
        name="customer_windows",
        entities=[customer],
        source=transactions,
        mode="pandas",
        udf=at_microseconds,
        aggregations=_aggs,
        ttl=timedelta(days=7),
        online=True,
        tags=checks_tags(
            {
                "customer_id": {"nullable": False, "ge": 1},
                "amount": {"dtype": "float", "nullable": False, "ge": 0.0, "le": 1e7},
            }
        ),
        schema=[Field(name="customer_id", dtype=Int64)]
        + [Field(name=a.name, dtype=Int64 if a.function == "count" else Float64) for a in _aggs],
        description="the customer's amounts over the last hour, day and week, the transaction itself included",
    )
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    source=customers,
    ttl=timedelta(0),
    online=True,
    tags=checks_tags({"typical_spend": {"dtype": "float", "nullable": False, "gt": 0.0}}),
    schema=[Field(name="customer_id", dtype=Int64), Field(name="typical_spend", dtype=Float64)],
    description="what the bank knows of the customer",
)

transaction = RequestSource(
    name="transaction",
    schema=[
        Field(name="event_timestamp", dtype=UnixTimestamp),
        Field(name="amount", dtype=Float64),
        Field(name="merchant_category", dtype=String),
        Field(name="channel", dtype=String),
        Field(name="card_present", dtype=Int64),
        Field(name="country_mismatch", dtype=Int64),
        Field(name="customer_age", dtype=Int64),
        Field(name="account_age_days", dtype=Int64),
    ],
)

ROW_FEATURES = {
    "txn_amount": Float64,
    "log_amount": Float64,
    "hour": Int64,
    "day_of_week": Int64,
    "merchant_category_code": Int64,
    "channel_code": Int64,
    "is_card_present": Int64,
    "is_country_mismatch": Int64,
    "amount_to_mean_7d": Float64,
    "amount_to_typical": Float64,
    "age_years": Int64,
    "tenure_days": Int64,
}


@on_demand_feature_view(
    sources=[transaction, customer_windows, customer_profile],
    mode="pandas",
    schema=[Field(name=n, dtype=t) for n, t in ROW_FEATURES.items()],
)
def transaction_features(inputs):
    "Features of the transaction itself, and its amount against the customer's week and typical spend."
    # the request's own columns come back under their own feature names (txn_amount, ...): the service then lists
    # everything the model reads, and a training frame has no column twice
    import numpy as np
    import pandas as pd

    from mlscale_sdk.data import CATEGORIES, CHANNELS

    ts = pd.to_datetime(inputs["event_timestamp"], utc=True)
    amount = inputs["amount"].astype("float64")
    code = {c: i for i, c in enumerate(CATEGORIES)}
    chan = {c: i for i, c in enumerate(CHANNELS)}
    return pd.DataFrame(
        {
            "txn_amount": amount,
            "log_amount": np.log1p(amount.clip(lower=0)),
            "hour": ts.dt.hour.astype("int64"),
            "day_of_week": ts.dt.dayofweek.astype("int64"),
            "merchant_category_code": inputs["merchant_category"].astype(str).map(code).fillna(-1).astype("int64"),
            "channel_code": inputs["channel"].astype(str).map(chan).fillna(-1).astype("int64"),
            "is_card_present": inputs["card_present"].astype("int64"),
            "is_country_mismatch": inputs["country_mismatch"].astype("int64"),
            "amount_to_mean_7d": (amount / inputs["amount_mean_7d"].astype("float64")).round(6),
            "amount_to_typical": (amount / inputs["typical_spend"].astype("float64")).round(6),
            "age_years": inputs["customer_age"].astype("int64"),
            "tenure_days": inputs["account_age_days"].astype("int64"),
        }
    )


fraud_model = FeatureService(
    name="fraud_model",
    features=[customer_windows, customer_profile, transaction_features],
    description="what the fraud model trains on and is served",
)
