"""Panel REST latency of the list views with a big catalog: p50/p95 per route against the goal (p95 <= 50 ms).

    python bench/bench_server.py                        # 1,000 jobs, 10,000 runs, 200 requests a route
    python bench/bench_server.py --jobs 200 --runs 2000 --requests 50 --no-cluster

A fresh project (a temporary MLSCALE_HOME) gets one job promoted the ordinary way (`jobs.promote`), then JOBS-1
clones of its catalog rows with varied, realistic specs (cron schedules in several time zones, parameters, a cluster
profile, retries, alert rules; every tenth paused) and RUNS run rows spread over the jobs (statuses succeeded,
failed with an error, running, queued; parameters, metrics, attempts), bulk-inserted through the store's tables.
Optionally one small real Dask cluster is started, so /clusters asks a live scheduler for its details.

A real `jupyter server` (the mlscale extension enabled, token auth, loopback) then serves the panel's list routes;
each route is requested REQUESTS times one after the other (after a few warm-up requests) by a client with a kept-
alive connection, as the panel's poll does; the time is the full HTTP round trip. Printed per route: p50, p95, the
ratio p95 / goal, and the response size. Not a timed test: figures depend on the machine.
"""
import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLSCALE_LOG_LEVEL", "WARNING")
BIN = Path(sys.executable).parent
GOAL_MS = 50.0
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
SCHEDULES = ["0 * * * *", "*/15 * * * *", "30 2 * * *", "0 6 * * 1-5", "0 0 1 * *", None]


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def notebook(path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell("rows = 1000\nthreshold = 0.5")
    c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell("print(rows * threshold)")]
    nbformat.write(nb, path)
    return path


def spec_for(base: dict, i: int, rng) -> dict:
    "A varied, valid job spec derived from the promoted one."
    s = dict(base, schedule=rng.choice(SCHEDULES), timezone=rng.choice(ZONES), retries=rng.randint(0, 3),
             parameters={"rows": rng.randint(1, 10) * 1000, "threshold": round(rng.random(), 3), "region": f"r{i % 7}"},
             tags={"team": f"team-{i % 12}", "tier": rng.choice(["gold", "silver"])}, paused=i % 10 == 0)
    if i % 3 == 0:
        s["cluster"] = "local"
    if i % 4 == 0:
        s["alerts"] = [{"metric": "auc", "below": 0.8, "on_alert": [{"webhook": "https://hooks.example.org/x"}]}]
    return s


def populate(home: Path, n_jobs: int, n_runs: int, seed: int = 0) -> list:
    "Promote one job, clone its rows into `n_jobs` jobs and add `n_runs` runs; return the job names."
    from mlscale_sdk import jobs as J, store
    from mlscale_sdk.jobs.spec import JobSpec

    rng = random.Random(seed)
    J.promote(notebook(home / "report.ipynb"), name="job-0000", schedule="0 * * * *")
    t = store.tables()
    with t.engine.connect() as c:
        job = dict(c.execute(t.jobs.select()).first()._mapping)
        ver = dict(c.execute(t.versions.select()).first()._mapping)
    base = json.loads(job["spec"])
    names, jobs, vers = ["job-0000"], [], []
    for i in range(1, n_jobs):
        name = f"job-{i:04d}"
        spec = JobSpec.model_validate(spec_for(base, i, rng))  # every stored spec is one the API accepts
        jobs.append(dict(job, name=name, spec=spec.model_dump_json(), paused=spec.paused))
        vers.append(dict(ver, job=name))
        names.append(name)
    now = time.time()
    runs = []
    for k in range(n_runs):
        name = names[k % len(names)]
        status = rng.choices(["succeeded", "failed", "running", "queued"], [85, 10, 3, 2])[0]
        queued = now - (n_runs - k) * 60
        started = None if status == "queued" else queued + 1
        ended = started + rng.uniform(5, 600) if status in ("succeeded", "failed") else None
        runs.append(dict(
            id=f"{name}-{k:06d}", job=name, version=job["version"], scheduled_for=queued, trigger="schedule",
            attempt=1 + (status == "failed"), status=status, queued_at=queued, started_at=started, ended_at=ended,
            error="ValueError: threshold out of range (cell 3)" if status == "failed" else None,
            mlflow_run_id=f"{k:032x}", output_path=f".mlscale/runs/{name}/{k}.ipynb",
            parameters=json.dumps({"rows": 1000 + k % 9}),
            metrics=json.dumps({"auc": round(0.7 + rng.random() * 0.25, 4), "rows": 1000}) if ended else None,
            attempts=json.dumps([{"attempt": 1, "status": "failed", "error": "timeout"}] if status == "failed" else []),
            executor="scheduler", heartbeat_at=ended or now))
    with t.engine.begin() as c:
        if jobs:
            c.execute(t.jobs.insert(), jobs)
            c.execute(t.versions.insert(), vers)
        for i in range(0, len(runs), 2000):
            c.execute(t.runs.insert(), runs[i:i + 2000])
    return names


def start_server(home: Path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "bench-token"
    cmd = [str(BIN / "jupyter"), "server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.root_dir={home}", f"--IdentityProvider.token={token}",
           '--ServerApp.jpserver_extensions={"mlscale_sdk": True}']
    log = open(home / "server.log", "w")
    p = subprocess.Popen(cmd, env={**os.environ, "MLSCALE_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.monotonic()
    while True:
        try:
            conn.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
            if conn.getresponse().read() is not None:
                break
        except OSError:
            conn.close()
            if time.monotonic() - t0 > 90 or p.poll() is not None:
                p.kill()
                log = (home / "server.log").read_text()[-3000:]
                raise RuntimeError(f"jupyter server did not start:\n{log}") from None
            time.sleep(0.3)
    return p, conn, token


def time_route(conn, token, path: str, n: int, warm: int = 3) -> dict:
    "Request `path` `n` times (after `warm` unmeasured requests); times in ms."
    ms, size = [], 0
    for i in range(warm + n):
        t0 = time.perf_counter()
        conn.request("GET", f"/mlscale/api{path}", headers={"Authorization": f"token {token}"})
        r = conn.getresponse()
        body = r.read()
        dt = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
        if i >= warm:
            ms.append(dt)
            size = len(body)
    return {"route": path, "p50": statistics.median(ms), "p95": q(ms, 95), "max": max(ms), "bytes": size, "n": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--no-cluster", action="store_true", help="do not start a Dask cluster for /clusters")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["MLSCALE_HOME"] = str(home)
        from mlscale_sdk.config import settings
        settings.cache_clear()
        t0 = time.perf_counter()
        names = populate(home, a.jobs, a.runs)
        print(f"populated {a.jobs} jobs, {a.runs} runs in {time.perf_counter() - t0:.1f}s")
        handle = None
        if not a.no_cluster:
            from mlscale_sdk.clusters import start_cluster
            handle = start_cluster("local", n_workers=1)
        server, conn, token = start_server(home)
        busiest = names[len(names) // 2]
        routes = ["/jobs", "/jobs?since=0", f"/jobs/{busiest}/history", f"/jobs/{busiest}/history?limit=500",
                  "/clusters", "/monitor/alerts", "/mlflow/models"]
        try:
            res = [time_route(conn, token, r, a.requests if "mlflow" not in r else max(10, a.requests // 10))
                   for r in routes]
        finally:
            server.terminate()
            server.wait(30)
            if handle is not None:
                handle.close()
    print(f"\n{'route':<44} {'p50 ms':>8} {'p95 ms':>8} {'p95/goal':>9} {'bytes':>10}  (goal: p95 <= {GOAL_MS:g} ms)")
    for r in res:
        flag = "ok" if r["p95"] <= GOAL_MS else "MISS"
        print(f"{r['route']:<44} {r['p50']:8.1f} {r['p95']:8.1f} {r['p95'] / GOAL_MS:8.2f}x {r['bytes']:>10}  {flag}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"jobs": a.jobs, "runs": a.runs, "goal_ms": GOAL_MS, "routes": res}, indent=1)
        )


if __name__ == "__main__":
    main()
