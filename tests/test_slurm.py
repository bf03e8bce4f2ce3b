"""The Slurm backend (dask_jobqueue.SLURMCluster) on a real single-node Slurm started for this module."""
import json, os, shutil, socket, subprocess, time
from pathlib import Path

import pytest

from conftest import free_port, mlscale, wait_for

BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue")


def _slurm_conf(d: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=mlscale
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
ReturnToService=2
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
MpiDefault=none
NodeName={host} CPUs={os.cpu_count()} RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def _munged():
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return None
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True, timeout=30)
    return True


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    "A running single-node Slurm (munged, slurmctld, slurmd on free ports); SLURM_CONF points at it."
    if os.geteuid() != 0:
        pytest.skip("a single-node Slurm needs root (slurmd runs jobs as root here)")
    missing = [b for b in BINARIES if not shutil.which(b) and not Path("/usr/sbin", b).exists()]
    if missing:
        pytest.skip(f"Slurm binaries missing ({', '.join(missing)}): run .ci/install-system.sh")
    d = tmp_path_factory.mktemp("slurm")
    conf = _slurm_conf(d)
    started_munge = _munged()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    procs = [subprocess.Popen(["/usr/sbin/slurmctld", "-D", "-f", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)]
    time.sleep(1)
    procs.append(subprocess.Popen(["/usr/sbin/slurmd", "-D", "-f", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT))
    try:
        wait_for(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout,
                 timeout=60, what="the Slurm node idle")
        yield conf
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, timeout=30)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if started_munge:
            subprocess.run(["pkill", "-F", "/run/munge/munged.pid"], capture_output=True)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _jobs() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout.split()


def test_backend_status(slurm, project):
    from mlscale_sdk.slurm import backend_status, check_slurm
    assert "idle" in check_slurm()
    assert backend_status("slurm") == {"installed": True, "reachable": True, "reason": "sinfo answered"}
    assert backend_status("local") == {"installed": True, "reachable": True, "reason": "runs on this machine"}
    assert backend_status("remote")["reachable"] is False  # nothing listens on the default address
    out = json.loads(mlscale("cluster", "profiles", "--json").stdout)
    assert (out["slurm"]["installed"], out["slurm"]["reachable"]) == (True, True)
    assert (out["remote"]["installed"], out["remote"]["reachable"]) == (True, False)
    assert "INSTALLED  REACHABLE" in mlscale("cluster", "profiles").stdout


def test_unreachable_slurm_is_a_clear_error(project, monkeypatch, tmp_path):
    from mlscale_sdk.slurm import SlurmUnavailableError, backend_status, check_slurm
    monkeypatch.setenv("PATH", str(tmp_path))  # no sinfo at all
    with pytest.raises(SlurmUnavailableError, match="slurm-wlm"):
        check_slurm()
    st = backend_status("slurm")
    assert st["reachable"] is False and "slurm-wlm" in st["reason"], st


def test_cluster_on_slurm(slurm, project, monkeypatch):
    monkeypatch.chdir(project)  # sbatch writes the jobs' slurm-N.out here, not into the repository
    from mlscale_sdk.clusters import start_cluster
    from mlscale_sdk.clusters import list_clusters
    h = start_cluster("slurm", name="slurmy")
    try:
        assert "#SBATCH" in h.cluster.job_script() and "-p debug" in h.cluster.job_script()
        h.scale(2)
        h.wait_for_workers(2, timeout=120)
        assert len(_jobs()) == 2
        ids = h.client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        assert all(ids.values()) and set(ids.values()) <= set(_jobs())
        assert h.client.submit(sum, [1, 2, 3]).result() == 6
        assert "slurmy" in [c["name"] if isinstance(c, dict) else c.name for c in list_clusters()]
        assert "slurmy" in mlscale("cluster", "list").stdout
        h.scale(1)
        wait_for(lambda: len(h.workers()) == 1 and len(_jobs()) == 1, timeout=60, what="scale down to one job")
    finally:
        h.close()
    wait_for(lambda: not _jobs(), timeout=60, what="no job left in squeue")


def test_bad_slurm_option_is_a_clear_error(project):
    from mlscale_sdk.clusters import ClusterValidationError, start_cluster
    with pytest.raises((ClusterValidationError, TypeError), match="no_such_option"):
        start_cluster("slurm", no_such_option=1, register=False)
    with pytest.raises(ClusterValidationError, match="job_script_prologue"):
        start_cluster({"cls": "dask_jobqueue.SLURMCluster", "options": {"job_script_prologue": ["rm -rf /"]}},
                      register=False)
