"""Our Dask engine and offline store for Feast vs Feast's LocalComputeEngine (pandas) + file offline store.

Measured in one run on the same views and data: `FeatureStore.materialize` of a plain FeatureView and of a
BatchFeatureView with a pandas udf, and `FeatureStore.get_historical_features` for an entity frame; rows/s of each,
the ratio (goal: ours >= 1.5x the local engine) and peak RSS. Ours runs on a real 2-worker LocalCluster (processes,
1 thread each); every local step runs in a fresh process of its own (its peak RSS is that process's).

Run: .venv/bin/python bench/bench_features.py [--rows 4000000] [--events N] [--files 8]
     .venv/bin/python bench/bench_features.py --ooc [--limit-mb 400]   # data 5x one worker's memory limit
     add --profile DIR to print where our time goes (task stream) and keep cProfiles of the client
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2026-01-01", tz="UTC")
DAYS = 30
CATS = np.array([f"cat-{i:02d}" for i in range(24)], dtype=object)
GOAL = 1.5
STEPS = ("materialize plain", "materialize udf", "materialize plain redis", "materialize udf redis",
         "historical plain", "historical udf")
UDF_SCOPE = os.environ.get("BENCH_UDF_SCOPE", "rows")  # `entities` measures the udf view shuffled by entity
REDIS_DB = {"dask": 0, "local": 1}  # one Redis server, a database per engine (the keys of both would collide)


# --- data ------------------------------------------------------------------------------------------------------

def make_data(path: Path, rows: int, entities: int, files: int, seed: int = 0) -> float:
    "`rows` readings of `entities` in `files` Parquet files (file i holds the i-th slice of time); bytes per row."
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    per = -(-rows // files)
    span = DAYS * 86400 / files
    size = 0.0
    for i in range(files):
        n = min(per, rows - i * per)
        if n <= 0:
            break
        sec = np.sort(rng.uniform(i * span, (i + 1) * span, n)).round()
        ts = T0 + pd.to_timedelta(sec, unit="s")
        df = pd.DataFrame({"entity_id": rng.integers(1, entities + 1, n), "ts": ts,
                           "created": ts + pd.to_timedelta(rng.integers(0, 600, n), unit="s"),
                           "amount": rng.gamma(2.0, 30.0, n).round(2), "qty": rng.integers(1, 9, n),
                           "score": rng.standard_normal(n).round(5), "category": CATS[rng.integers(0, len(CATS), n)]})
        if i == 0:
            size = df.memory_usage(deep=True).sum() / n
        df.to_parquet(path / f"part-{i:03d}.parquet", index=False)
        del df
    return size


def make_events(rows: int, entities: int, seed: int = 1) -> pd.DataFrame:
    "Label events: an entity at a time within the data's span (some entities have no rows near it)."
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(rng.uniform(86400, DAYS * 86400, rows).round(), unit="s")
    return pd.DataFrame({"entity_id": rng.integers(1, int(entities * 1.05) + 1, rows), "event_timestamp": ts,
                         "label": rng.integers(0, 2, rows)})


def derive(df):
    "Row-wise pandas udf of the BatchFeatureView: the line's spend and whether it is large."
    return df.assign(spend=(df["amount"] * df["qty"]).round(4), large=(df["amount"] > 100).astype("int64"))


def definitions(data: Path):
    "The entity, a plain FeatureView and a BatchFeatureView with a pandas udf over the same Parquet folder."
    from feast import BatchFeatureView, Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    ent = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    src = FileSource(name="readings", path=str(data), timestamp_field="ts", created_timestamp_column="created")
    plain = FeatureView(name="plain", entities=[ent], source=src, ttl=timedelta(days=2),
                        schema=[Field(name="entity_id", dtype=Int64), Field(name="amount", dtype=Float64),
                                Field(name="qty", dtype=Int64), Field(name="score", dtype=Float64),
                                Field(name="category", dtype=String)])
    # `derive` works row by row and says so (mlscale.udf_scope: rows): our engine then skips the shuffle by entity;
    # Feast's local engine ignores the tag
    udf = BatchFeatureView(name="derived", entities=[ent], source=src, mode="pandas", online=True, udf=derive,
                           ttl=timedelta(days=2), tags={"mlscale.udf_scope": UDF_SCOPE},
                           schema=[Field(name="entity_id", dtype=Int64), Field(name="spend", dtype=Float64),
                                   Field(name="large", dtype=Int64)])
    return [ent, plain, udf]


FEATURES = {"plain": ["plain:amount", "plain:qty", "plain:score", "plain:category"],
            "udf": ["derived:spend", "derived:large"]}


def repo(path: Path, engine: str, redis_port: int | None = None) -> Path:
    "A feature repository with our engine and store (`dask`) or Feast's local engine and file store (`local`)."
    path.mkdir(parents=True, exist_ok=True)
    online = (f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port},db={REDIS_DB[engine]}\n"
              if redis_port else f"online_store:\n  type: sqlite\n  path: {path}/online.db\n")
    if engine == "dask":
        extra = ("batch_engine:\n  type: mlscale_sdk.features.engine.DaskComputeEngine\n"
                 "offline_store:\n  type: mlscale_sdk.features.offline.DaskOfflineStore\n")
    else:
        extra = "batch_engine:\n  type: local\n  backend: pandas\noffline_store:\n  type: file\n"
    (path / "feature_store.yaml").write_text(
        f"project: bench\nprovider: local\nregistry: {path}/registry.db\n"
        f"{online}{extra}entity_key_serialization_version: 3\n")
    return path


# --- measuring -------------------------------------------------------------------------------------------------

class Peak:
    "Peak RSS of some processes, sampled every 50 ms on a thread: of each (max) and of all together (sum)."

    def __init__(self, pids):
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.max = self.sum = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        import psutil

        rss = []
        for p in self.procs:
            try:
                rss.append(p.memory_info().rss)
            except psutil.Error:
                rss.append(0)
        self.max, self.sum = max(self.max, max(rss)), max(self.sum, sum(rss))
        return rss

    def _run(self):
        while not self._stop.wait(0.05):
            self.sample()

    def __enter__(self):
        self.sample()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.sample()


def start_redis(folder: Path):
    "A redis-server on a free loopback port (as the tests start one), not saving anything; (process, port)."
    import socket

    import redis

    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def store_of(name: str) -> str:
    "The online store a step writes (`redis` or `sqlite`)."
    return "redis" if name.endswith(" redis") else "sqlite"


def step(fs, name: str, start, end, events):
    "Run one benchmarked step on the FeatureStore `fs`; return (rows it worked through, result summary)."
    view, what = name.split()[1], name.split()[0]
    if what == "materialize":
        fs.materialize(start, end, feature_views=["plain" if view == "plain" else "derived"])
        return None
    df = fs.get_historical_features(events, FEATURES[view]).to_df()
    col = FEATURES[view][0].split(":")[1]
    return {"rows": len(df), "matched": int(df[col].notna().sum())}


def local_child(a):
    "One step on Feast's local engine in this (fresh) process; prints its figures as JSON."
    import resource

    from feast import FeatureStore

    fs = FeatureStore(repo_path=a.repo)
    events = pd.read_parquet(a.events_file) if a.step.startswith("historical") else None
    t = time.perf_counter()
    out = {"ok": True}
    try:
        out["result"] = step(fs, a.step, pd.Timestamp(a.start).to_pydatetime(), pd.Timestamp(a.end).to_pydatetime(),
                             events)
    except Exception as e:  # report how the local engine fails (e.g. the file store and a udf's columns)
        out = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:160]}"}
    out["seconds"] = time.perf_counter() - t
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(out), flush=True)


def run_local(a, name: str, rp: Path, events_path: Path, start, end, cap: int) -> dict:
    "One local-engine step in a child process, killed if its RSS passes `cap` bytes."
    import psutil

    cmd = [sys.executable, __file__, "--child", "--repo", str(rp), "--step", name, "--events-file", str(events_path),
           "--start", str(start), "--end", str(end)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, killed, t = 0, False, time.perf_counter()
    proc = psutil.Process(p.pid)
    while p.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            pass
        if peak > cap and not killed:
            p.kill()
            killed = True
        time.sleep(0.05)
    out, err = p.communicate()
    res = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
    if killed:
        return {"ok": False, "error": f"killed by the bench at its RSS cap ({cap / 2**30:.1f} GiB) after "
                                      f"{time.perf_counter() - t:.0f}s", "peak_rss": peak}
    if not res:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        tail = (err.strip().splitlines() or [""])[-1][:160]
        return {"ok": False, "error": f"{how}: {tail}", "peak_rss": peak}
    r = res[0]
    r["peak_rss"] = max(r["peak_rss"], peak)
    return r


def run_ours(client, pids, name: str, fs, start, end, events, profile) -> dict:
    "One step of our engine on the cluster, with the peak RSS of each worker, of all and of this (client) process."
    import cProfile
    import pstats

    from distributed import get_task_stream

    me = Peak([os.getpid()])
    prof = cProfile.Profile() if profile else None
    with Peak(pids) as w, me, get_task_stream(client) as ts:
        t = time.perf_counter()
        try:
            if prof:
                prof.enable()
            res = {"ok": True, "result": step(fs, name, start, end, events)}
        except Exception as e:
            res = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:160]}"}
        finally:
            if prof:
                prof.disable()
        res["seconds"] = time.perf_counter() - t
    res.update(worker_max=w.max, worker_sum=w.sum, client=me.max)
    if profile:
        res["profile"] = where_time_goes(ts.data, res["seconds"])
        with open(Path(profile) / f"{name.replace(' ', '_')}.client.txt", "w") as f:
            pstats.Stats(prof, stream=f).sort_stats("cumulative").print_stats(40)
    return res


def same_online(stores: dict, entities: int) -> str:
    "Whether ours and the local engine's online values agree for a sample of entities, per online store."
    rng = np.random.default_rng(3)
    rows = [{"entity_id": int(e)} for e in rng.integers(1, entities + 1, 1000)]
    feats = FEATURES["plain"] + FEATURES["udf"]
    out = []
    for online in ("sqlite", "redis"):
        try:
            a, b = (stores[eng, online].get_online_features(feats, rows).to_df() for eng in ("dask", "local"))
            pd.testing.assert_frame_equal(a, b)
            out.append(f"{online} yes ({int(a['amount'].notna().sum())} with values)")
        except AssertionError as e:
            out.append(f"{online} NO ({str(e).splitlines()[0][:80]})")
    return ", ".join(out)


def warm():
    "Import what the tasks need on a worker, feast included (seconds; the local engine's process pays it untimed)."
    import feast  # noqa: F401
    import feast.utils  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import mlscale_sdk.features.compute  # noqa: F401
    import mlscale_sdk.features.engine  # noqa: F401


def where_time_goes(stream: list, wall: float) -> str:
    "Task seconds per task prefix (compute and transfer) and how much of the wall time no task ran."
    from collections import defaultdict

    from dask.utils import key_split

    comp, xfer, spans = defaultdict(float), 0.0, []
    for t in stream:
        for s in t.get("startstops", ()):
            d = s["stop"] - s["start"]
            if s["action"] == "compute":
                comp[key_split(t["key"])] += d
                spans.append((s["start"], s["stop"]))
            elif s["action"] == "transfer":
                xfer += d
    busy, last = 0.0, None
    for a, b in sorted(spans):  # union of the compute intervals: time some task ran
        if last is None or a > last:
            busy += b - a
            last = b
        elif b > last:
            busy += b - last
            last = b
    top = sorted(comp.items(), key=lambda kv: -kv[1])[:8]
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in top)
    return (f"wall {wall:.1f}s, some task running {busy:.1f}s (client/scheduler only: {wall - busy:.1f}s); "
            f"task seconds: {parts}; transfers {xfer:.1f}s")


# --- the run ---------------------------------------------------------------------------------------------------

def mib(b):
    return f"{b / 2**20:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000, help="source rows (ignored with --ooc)")
    ap.add_argument("--entities", type=int, default=None, help="distinct entities (default rows/40)")
    ap.add_argument("--events", type=int, default=None, help="entity-frame rows (default rows/8, at most 1M)")
    ap.add_argument("--files", type=int, default=8, help="Parquet files of the source")
    ap.add_argument("--ooc", action="store_true", help="size the data to 5x one worker's memory limit")
    ap.add_argument("--limit-mb", type=int, default=None, help="memory limit per worker (default 4096, --ooc 400)")
    ap.add_argument("--local-cap-gb", type=float, default=8.0, help="kill a local-engine step past this RSS")
    ap.add_argument("--profile", default=None, help="folder for client cProfiles; prints where our time goes")
    ap.add_argument("--skip-local", action="store_true", help="measure only ours (e.g. a rerun of ours at --ooc)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for k in ("repo", "step", "start", "end", "events-file"):
        ap.add_argument(f"--{k}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return local_child(a)

    import dask
    from distributed import Client, LocalCluster
    from feast import FeatureStore

    limit = (a.limit_mb or (400 if a.ooc else 4096)) * 2**20
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        # size the data: --ooc makes it 5x one worker's memory limit (in pandas' memory, deep)
        probe = make_data(tmp / "probe", 20_000, 500, 1)
        rows = int(np.ceil(5 * limit / probe)) if a.ooc else a.rows
        entities = a.entities or max(100, rows // 40)
        n_ev = a.events or min(1_000_000, max(1000, rows // 8))
        # out of core, files of 250,000 rows: a worker holds Feast (about 400 MiB) and one partition (a file here)
        files = max(a.files, rows // 250_000) if a.ooc else a.files
        t = time.perf_counter()
        per_row = make_data(tmp / "data", rows, entities, files)
        events = make_events(n_ev, entities)
        events.to_parquet(tmp / "events.parquet", index=False)
        data_bytes = per_row * rows
        print(f"data: {rows:,} rows of {entities:,} entities in {files} Parquet files, {mib(data_bytes)} MiB in "
              f"pandas ({data_bytes / limit:.1f}x a worker's memory limit of {mib(limit)} MiB); entity frame "
              f"{n_ev:,} events; generated in {time.perf_counter() - t:.0f}s", flush=True)
        defs = definitions(tmp / "data")
        redis_proc, port = start_redis(tmp)
        stores = {}
        for eng in ("dask", "local"):
            for online in ("sqlite", "redis"):
                rp = repo(tmp / f"{eng}-{online}", eng, port if online == "redis" else None)
                stores[eng, online] = FeatureStore(repo_path=str(rp))
                stores[eng, online].apply(defs)
        start, end = T0 - pd.Timedelta("1D"), T0 + pd.Timedelta(f"{DAYS + 1}D")
        if a.profile:
            Path(a.profile).mkdir(parents=True, exist_ok=True)

        # Feast's local engine: each step in a fresh process of its own (before our cluster takes memory)
        avail = __import__("psutil").virtual_memory().available
        cap = int(min(a.local_cap_gb * 2**30, 0.7 * avail))
        local = {}
        for name in STEPS:
            local[name] = (run_local(a, name, tmp / f"local-{store_of(name)}", tmp / "events.parquet", start, end, cap)
                           if not a.skip_local else {"ok": False, "error": "skipped (--skip-local)", "peak_rss": 0})
            r = local[name]
            print(f"  local  {name:23s} {'%.1fs' % r['seconds'] if r['ok'] else r['error']}", flush=True)

        # ours: a real 2-worker LocalCluster (processes, 1 thread each)
        cfg = {"distributed.worker.memory.target": 0.6, "distributed.worker.memory.spill": 0.7,
               "distributed.worker.memory.pause": 0.85, "distributed.worker.memory.terminate": 0.98}
        ours = {}
        with dask.config.set(cfg), LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                memory_limit=limit, dashboard_address=None,
                                                local_directory=str(tmp / "spill")) as lc, Client(lc) as client:
            pids = list(client.run(os.getpid).values())
            client.run(warm)  # a long-lived cluster has imported these already; not part of any step
            for name in STEPS:
                ours[name] = run_ours(client, pids, name, stores["dask", store_of(name)], start, end, events,
                                      a.profile)
                r = ours[name]
                print(f"  ours   {name:23s} {'%.1fs' % r['seconds'] if r['ok'] else r['error']} (peak worker RSS "
                      f"{mib(r['worker_max'])} MiB, restarted so far: "
                      f"{len(set(pids) - set(client.run(os.getpid).values()))})", flush=True)
            restarted = sorted(set(pids) - set(client.run(os.getpid).values()))
        same = same_online(stores, entities) if not a.skip_local else "not compared (--skip-local)"
        report(ours, local, rows, n_ev, limit, data_bytes, restarted, a)
        print(f"  online values of ours == local's (1,000 entities, every feature): {same}")
    finally:
        if "redis_proc" in locals():
            redis_proc.terminate()
            redis_proc.wait(10)
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(ours, local, rows, n_ev, limit, data_bytes, restarted, a):
    "The table: rows/s of each engine per step, the ratio and the goal, peak RSS."
    print()
    print(f"{'step':23s} | {'rows':>10s} | {'ours rows/s':>12s} | {'local rows/s':>12s} | {'ratio':>6s} | "
          f"{'goal ' + str(GOAL) + 'x':>9s} | {'ours worker RSS max/sum MiB':>27s} | {'ours client':>11s} | "
          f"{'local RSS MiB':>13s}")
    print("-" * 148)
    notes = []
    for name in STEPS:
        n = rows if name.startswith("materialize") else n_ev
        o, lo = ours[name], local[name]
        ors = n / o["seconds"] if o["ok"] else None
        lrs = n / lo["seconds"] if lo["ok"] else None
        ratio = f"{ors / lrs:.2f}x" if ors and lrs else "-"
        met = ("yes" if ors / lrs >= GOAL else "NO") if ors and lrs else ("n/a" if ors else "FAILED")
        print(f"{name:23s} | {n:>10,} | {f'{ors:,.0f}' if ors else 'failed':>12s} | "
              f"{f'{lrs:,.0f}' if lrs else 'failed':>12s} | {ratio:>6s} | {met:>9s} | "
              f"{mib(o['worker_max']) + ' / ' + mib(o['worker_sum']):>27s} | {mib(o['client']):>11s} | "
              f"{mib(lo['peak_rss']):>13s}")
        for who, r in (("ours", o), ("local", lo)):
            if not r["ok"]:
                notes.append(f"{who} {name}: {r['error']}")
            elif r.get("result"):
                notes.append(f"{who} {name}: {r['result']['rows']:,} rows, {r['result']['matched']:,} with features")
    print("-" * 148)
    print(f"workers: 2 processes x 1 thread, memory limit {mib(limit)} MiB each; data {mib(data_bytes)} MiB in pandas "
          f"= {data_bytes / limit:.1f}x one worker's limit; workers restarted: {restarted or 'none'}")
    print("local: Feast LocalComputeEngine (pandas backend) + file offline store, each step in a fresh process")
    for name in STEPS:
        if ours[name].get("profile"):
            print(f"  profile ours {name}: {ours[name]['profile']}")
    for n in notes:
        print("  " + n)


if __name__ == "__main__":
    main()
