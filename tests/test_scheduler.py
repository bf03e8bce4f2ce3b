"""The scheduler as real processes: slots fire on time, kill -9 and restart lose and duplicate nothing,
catch-up policies, concurrency limits, two schedulers at once, run-now on the warm path, templates as jobs."""
import json, os, signal, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path
import nbformat
import pytest

from conftest import BIN, ROOT, mlscale, wait_for
from mlscale_sdk import jobs as J
from test_jobs import make_nb


class Sched:
    "A real `mlscale scheduler run` process."
    def __init__(self, project, *args, env=None):
        self.log = open(project / f"scheduler-{time.monotonic_ns()}.log", "w+")
        self.p = subprocess.Popen([str(BIN / "mlscale"), "scheduler", "run", "--poll", "0.1", *args],
                                  env={**os.environ, "MLSCALE_HOME": str(project), **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        self.log.flush(); self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(60)


@pytest.fixture
def sched(project):
    started = []

    def start(*args, **kw):
        s = Sched(project, *args, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop(signal.SIGKILL)


def slots_of(name):
    return sorted(r.scheduled_for.timestamp() for r in J.history(name, limit=10_000) if r.scheduled_for)


def leader_pid():
    s = J.scheduler_alive()
    return s and s["pid"]


def test_fires_at_the_right_slots_with_papermill(project, sched):
    J.promote(make_nb(project / "tick.ipynb", body="import os; print(os.environ['MLSCALE_JOB_RUN_ID'])"), schedule="* * * * * */3")
    s = sched()
    wait_for(lambda: sum(r.status == "succeeded" for r in J.history("tick")) >= 2, timeout=90, what="two runs")
    s.stop()
    runs = [r for r in J.history("tick") if r.status == "succeeded"]
    for r in runs:
        assert r.scheduled_for.timestamp() % 3 == 0 and r.scheduled_for.microsecond == 0
        fired = r.queued_at - r.scheduled_for
        assert 0 <= fired.total_seconds() < 5, fired   # fired at its slot (the bench measures the delay)
        assert r.started_at >= r.scheduled_for
        assert r.id in nbformat.read(r.output_path, as_version=4).cells[-1].outputs[0]["text"]
    sl = slots_of("tick")
    assert len(sl) == len(set(sl)) and all(b - a == 3 for a, b in zip(sl, sl[1:])), sl
    assert "scheduler: NOT running" in mlscale("scheduler", "status", env={"MLSCALE_HOME": str(project)}).stdout


def test_kill9_mid_run_then_restart(project, sched):
    "The run in progress is marked interrupted and retried; no slot is lost (catchup=all) or run twice."
    body = "import time, os, pathlib\npathlib.Path(os.environ['MLSCALE_RUN_DIR'], 'started').touch()\ntime.sleep(3)"
    J.promote(make_nb(project / "slow.ipynb", body=body), schedule="* * * * * */5", retries=1, retry_delay=0, catchup="all")
    s1 = sched()

    def running_inside():
        rs = [r for r in J.history("slow") if r.status == "running"]
        return rs and (Path(rs[0].output_path).parent / "started").exists() and rs[0]
    wait_for(running_inside, timeout=60, what="a run executing its notebook")
    victim = running_inside()
    first_slot = slots_of("slow")[0]
    os.kill(s1.p.pid, signal.SIGKILL)   # the scheduler alone: its run dies with it (PDEATHSIG)
    s1.p.wait(10)
    assert J.get_run(victim.id).status == "running"   # nobody recorded anything: the crash left it "running"
    time.sleep(6)                                      # at least one slot passes while no scheduler runs
    down_until = time.time()
    s2 = sched()
    wait_for(lambda: J.get_run(victim.id).status == "succeeded", timeout=90, what="the interrupted run retried")
    v = J.get_run(victim.id)
    assert v.attempt == 2 and v.attempts[0]["status"] == "interrupted" and "gone" in v.attempts[0]["error"], v.attempts
    wait_for(lambda: any(x > down_until for x in slots_of("slow")), timeout=60, what="a slot after the restart")
    s2.stop()
    sl = slots_of("slow")
    assert len(sl) == len(set(sl)), "a slot ran twice"
    expected = list(range(int(first_slot), int(sl[-1]) + 1, 5))
    assert [int(x) for x in sl] == expected, "a slot was lost"
    assert "interrupted" in s2.output() or "gone" in s2.output()


@pytest.mark.parametrize("policy", ["latest", "all", "none"])
def test_catchup_policies_after_downtime(project, sched, policy):
    J.promote(make_nb(project / "c.ipynb"), name="c", schedule="* * * * * *", catchup=policy)
    promoted = time.time()
    time.sleep(7)                                  # ~7 slots pass with no scheduler
    start = time.time()
    missed = [x for x in J.cron_slots("* * * * * *", "UTC", J.get_job("c").created_at.timestamp(), start - 3)]
    s = sched("--backend", "noop")
    wait_for(lambda: any(r.status == "succeeded" and r.scheduled_for.timestamp() > start + 1
                         for r in J.history("c", limit=1000) if r.scheduled_for), timeout=30, what="an on-time slot run")
    s.stop()
    ran = set(slots_of("c"))
    skipped = {d.timestamp() for d in J.skipped_slots("c")}
    assert ran.isdisjoint(skipped)
    assert len(missed) >= 3
    if policy == "all":
        assert set(missed) <= ran and not skipped
    elif policy == "latest":
        assert len(set(missed) & ran) <= 1 and len(set(missed) - ran) >= 2
        assert set(missed) - ran <= skipped                      # skipped ones are recorded
    else:
        assert not (set(missed) & ran) and set(missed) <= skipped
        assert "missed slot(s) skipped by catchup='none'" in s.output()
    statuses = [r.status for r in J.history("c", limit=1000)]
    assert statuses.count("succeeded") >= 1 and not {"failed", "timed_out"} & set(statuses), statuses


def test_concurrency_limit_holds(project, sched):
    body = "import time, json, os, pathlib\nt0 = time.time(); time.sleep(1.5)\npathlib.Path(os.environ['MLSCALE_RUN_DIR'], 'span.json').write_text(json.dumps([t0, time.time()]))"
    J.promote(make_nb(project / "one.ipynb", body=body), name="one", max_concurrent=1)
    J.promote(make_nb(project / "two.ipynb", body=body), name="two", max_concurrent=2)
    s = sched("--max-parallel", "4")
    wait_for(lambda: J.scheduler_alive() is not None, timeout=30, what="scheduler")
    runs = [J.run_now("one") for _ in range(3)] + [J.run_now("two") for _ in range(3)]
    assert all("queued for the scheduler" in r.executor for r in runs)
    for r in runs:
        assert J.wait_run(r.id, timeout=120).status == "succeeded"
    s.stop()

    def peak(name):
        spans = [json.loads((Path(r.output_path).parent / "span.json").read_text()) for r in J.history(name)]
        return max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert peak("one") == 1
    assert peak("two") == 2


def test_two_schedulers_never_run_a_slot_twice(project, sched):
    J.promote(make_nb(project / "d.ipynb"), name="d", schedule="* * * * * *")
    a, b = sched("--backend", "noop"), sched("--backend", "noop")
    wait_for(lambda: len(slots_of("d")) >= 3, timeout=30, what="slots")
    st = json.loads(mlscale("scheduler", "status", "--json", env={"MLSCALE_HOME": str(project)}).stdout)
    assert st["running"] and sorted(x["role"] for x in st["schedulers"]) == ["leader", "standby"]
    leader = a if leader_pid() == a.p.pid else b
    other = b if leader is a else a
    leader.stop(signal.SIGKILL)                    # the standby takes over (the holder's pid is gone)
    wait_for(lambda: leader_pid() == other.p.pid, timeout=30, what="takeover")
    n = len(slots_of("d"))
    wait_for(lambda: len(slots_of("d")) >= n + 2, timeout=30, what="slots after the takeover")
    other.stop()
    sl = slots_of("d")
    assert len(sl) == len(set(sl))
    assert all(b - a == 1 for a, b in zip(sl, sl[1:])), "a slot was lost in the takeover"
    assert "standby" in (a.output() + b.output())


def test_run_now_lands_on_the_warm_scheduler(project, sched):
    J.promote(make_nb(project / "fast.ipynb"), name="fast")
    s = sched()
    wait_for(lambda: J.scheduler_alive() is not None, timeout=30, what="scheduler")
    J.run_now("fast", wait=True, timeout=60)       # first run: warms the page cache
    t0 = time.perf_counter()
    r = J.run_now("fast", wait=True, timeout=60)
    wall = time.perf_counter() - t0
    s.stop()
    assert r.status == "succeeded" and "scheduler" in r.executor
    print(f"run now through the warm scheduler: {wall:.2f}s")


@pytest.mark.slow
def test_templates_run_unchanged_as_jobs(project, sched):
    import shutil
    for n in ("retrain.ipynb", "score.ipynb"):
        shutil.copy(ROOT / "templates" / n, project / n)
    J.promote(project / "retrain.ipynb", parameters={"rows": 20000, "rounds": 30, "min_auc": 0.6}, timeout=300)
    J.promote(project / "score.ipynb", parameters={"rows": 3000})
    r = J.run_now("retrain", wait=True, timeout=300)
    assert r.status == "succeeded", r.error
    assert r.mlflow_run_id and r.metrics.get("auc", 0) > 0.6
    from mlscale_sdk import tracking
    assert tracking.model_version("fraud-detector", alias="champion").run_id == r.mlflow_run_id
    s = J.run_now("score", wait=True, timeout=300)
    assert s.status == "succeeded", s.error
    import pandas as pd
    scores = pd.read_parquet(Path(s.output_path).parent / "scores")
    assert len(scores) == 3000 and scores["score"].between(0, 1).all()


def test_bad_records_are_skipped_and_good_jobs_still_fire(project, sched):
    "Garbage JSON, an invalid spec and a cron that never fires in the store: logged once, skipped; the good job fires."
    from test_jobs import BAD_RECORDS, _insert_raw_job
    J.promote(make_nb(project / "nbs" / "good.ipynb", body="print('ok')"), name="good", schedule="* * * * * */2")
    for name, text in BAD_RECORDS.items():
        _insert_raw_job(name, text)
    s = sched("--backend", "noop")
    wait_for(lambda: len(J.history("good")) >= 2, timeout=60, what="two runs of the good job")
    time.sleep(1.0)
    s.stop()
    out = s.output()
    assert "tick failed" not in out, out
    for name in BAD_RECORDS:
        assert f"job {name!r}: invalid spec, skipped" in out, out
        assert out.count(f"job {name!r}: invalid spec, skipped") == 1, out   # once per change, not every reload
        assert not J.history(name)
