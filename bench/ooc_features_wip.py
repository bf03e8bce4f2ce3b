"""Out of core: a view over data 5x one worker's memory limit, materialized and joined on a real 2-worker cluster.

The view is a BatchFeatureView with a pandas udf, so both steps shuffle every row by entity (P2P, spilling to disk);
each worker is limited to LIMIT bytes. Both must finish with every worker's RSS bounded and no worker restarted.
"""
import os
import sys
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from feature_domains import repo_yaml  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
LIMIT = 512 * 2**20  # memory limit of each worker
T0 = pd.Timestamp("2026-01-01", tz="UTC")
FILE_ROWS, ENTITIES, DAYS = 25_000, 20_000, 20
FLOATS = 40  # float columns besides the keys: wide rows make the bytes without many rows to sort


def write_part(path: str, i: int, files: int) -> float:
    "File `i` of `files` (the i-th slice of time) on a worker; its size in pandas' memory (deep), in bytes."
    rng = np.random.default_rng(i)
    span = DAYS * 86400 / files
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(i * span, (i + 1) * span, FILE_ROWS)).round(), unit="s")
    df = pd.DataFrame({"entity_id": rng.integers(1, ENTITIES + 1, FILE_ROWS), "ts": ts,
                       **{f"f{j}": rng.standard_normal(FILE_ROWS).round(4) for j in range(FLOATS)}})
    df.to_parquet(Path(path) / f"part-{i:03d}.parquet", index=False)
    return float(df.memory_usage(deep=True).sum())


def spend(df):
    "The view's udf: a value computed from two columns."
    return df.assign(spend=(df["f0"] * df["f1"]).round(4))


class WorkerRSS:
    "The peak RSS of each worker process, sampled every 50 ms."

    def __init__(self, pids):
        import psutil

        self.procs = {p: psutil.Process(p) for p in pids}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.wait(0.05):
            for pid, p in self.procs.items():
                try:
                    self.peak[pid] = max(self.peak[pid], p.memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def test_view_over_5x_worker_memory_materializes_and_joins_without_restart(tmp_path, monkeypatch):
    import dask
    import psutil
    from distributed import Client, LocalCluster
    from feast import BatchFeatureView, Entity, FeatureStore, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    data = tmp_path / "data"
    data.mkdir()
    # the workers inherit it: Arrow's own pool keeps freed memory, which the worker counts as unmanaged
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    cfg = {"distributed.worker.memory.target": 0.5, "distributed.worker.memory.spill": 0.6,
           "distributed.worker.memory.pause": 0.9, "distributed.worker.memory.terminate": 0.98}
    with dask.config.set(cfg), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=LIMIT,
                                            dashboard_address=None, local_directory=str(tmp_path / "spill")) as lc, \
            Client(lc) as client:
        before = client.run(os.getpid)  # worker address -> process id
        idle = {p: round(psutil.Process(p).memory_info().rss / 2**20) for p in before.values()}
        per_file = FILE_ROWS * 8 * (2 + FLOATS)  # int64 key, timestamp and float64 columns
        files = int(np.ceil(5 * LIMIT / per_file))  # as many files as make the data 5x one worker's limit
        sizes = client.gather(client.map(write_part, [str(data)] * files, range(files), [files] * files))
        total = sum(sizes)
        assert total >= 5 * LIMIT, (total, LIMIT)

        ent = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
        src = FileSource(name="wide", path=str(data), timestamp_field="ts")
        view = BatchFeatureView(name="wide_spend", entities=[ent], source=src, mode="pandas", online=True,
                                udf=spend, ttl=timedelta(days=DAYS + 1),
                                schema=[Field(name="entity_id", dtype=Int64), Field(name="spend", dtype=Float64),
                                        Field(name="f2", dtype=Float64)])
        fs = FeatureStore(repo_path=str(repo_yaml(tmp_path / "repo", "dask", "ooc")))
        fs.apply([ent, view])
        rng = np.random.default_rng(7)
        events = pd.DataFrame({"entity_id": rng.integers(1, ENTITIES + 1, 50_000),
                               "event_timestamp": T0 + pd.to_timedelta(rng.uniform(86400 * (DAYS - 1), 86400 * DAYS,
                                                                                   50_000).round(), unit="s")})
        with WorkerRSS(before.values()) as rss:
            fs.materialize((T0 - timedelta(days=1)).to_pydatetime(), (T0 + timedelta(days=DAYS + 1)).to_pydatetime())
            got = fs.get_historical_features(events, ["wide_spend:spend", "wide_spend:f2"]).to_df()
        after = client.run(os.getpid)
        online = fs.get_online_features(["wide_spend:spend"], [{"entity_id": e} for e in range(1, 101)]).to_df()

    peaks = {p: round(v / 2**20) for p, v in rss.peak.items()}
    print(f"data {total / 2**20:.0f} MiB in pandas ({total / LIMIT:.1f}x the {LIMIT / 2**20:.0f} MiB worker limit) "
          f"in {files} files; worker RSS idle {idle} MiB, peak {peaks} MiB")
    assert after == before, (before, after)  # the same worker processes at the same addresses: none restarted
    assert all(0 < v <= 0.95 * LIMIT for v in rss.peak.values()), peaks
    assert len(got) == len(events) and got["entity_id"].tolist() == events["entity_id"].tolist()
    assert got["spend"].notna().mean() > 0.95  # nearly every entity has a row within the last day
    sample = got.sample(25, random_state=0)  # against the source rows themselves: newest at or before the event
    rows = pd.read_parquet(data, columns=["entity_id", "ts", "f0", "f1", "f2"],
                           filters=[("entity_id", "in", sorted(set(sample["entity_id"])))])
    for _, g in sample.iterrows():
        r = rows[(rows.entity_id == g.entity_id) & (rows.ts <= g.event_timestamp)].sort_values("ts", kind="stable")
        assert (g.spend, g.f2) == (np.round(r.f0.iloc[-1] * r.f1.iloc[-1], 4), r.f2.iloc[-1]), (g, r.tail(2))
    assert online["spend"].notna().all()
