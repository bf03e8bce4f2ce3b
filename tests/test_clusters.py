"""Cluster profiles, start/scale/stop, the cross-process registry and the remote profile, on real processes."""
import os, sys, json, socket, signal, subprocess, textwrap, time
from pathlib import Path
import pytest

from conftest import BIN, free_port, mlscale, wait_for
from mlscale_sdk import clusters as C


# ---------------------------------------------------------------- profiles

def test_shipped_profiles(project):
    profs = C.list_profiles()
    assert {"local", "local-gpu", "remote", "ssh"} <= set(profs)
    assert profs["local-gpu"].cls == "dask_cuda.LocalCUDACluster" and profs["local-gpu"].gpu
    assert profs["ssh"].cls == "distributed.SSHCluster"


def test_user_and_project_profiles_win_over_shipped(project):
    (project / "clusters").mkdir()
    (project / "clusters" / "local.yaml").write_text("description: project override\ncls: distributed.LocalCluster\noptions: {n_workers: 1}\n")
    (project / "clusters" / "tiny.yaml").write_text("description: one worker\ncls: distributed.LocalCluster\noptions: {n_workers: 1}\n")
    user = project / "xdg" / "mlscale" / "clusters"
    user.mkdir(parents=True)
    (user / "tiny.yaml").write_text("description: user tiny\ncls: distributed.LocalCluster\noptions: {n_workers: 1, threads_per_worker: 1}\n")
    profs = C.list_profiles()
    assert profs["local"].description == "project override"
    assert profs["tiny"].description == "user tiny"
    r = mlscale("cluster", "profiles", "--json")
    assert json.loads(r.stdout)["tiny"]["description"] == "user tiny"


@pytest.mark.parametrize("text, message", [
    ("cls: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("cls: LocalCluster\n", "dotted class path"),
    ("cls: distributed.LocalCluster\noptions: 3\n", "'options' must be a mapping"),
    ("cls: distributed.LocalCluster\nworkers: 3\n", "unknown key(s) ['workers']"),
    ("cls: distributed.LocalCluster\noptions: {address: '${MLSCALE_UNSET_VAR}'}\n", "MLSCALE_UNSET_VAR is not set"),
])
def test_bad_profiles_are_clear_errors(project, text, message):
    (project / "clusters").mkdir()
    (project / "clusters" / "bad.yaml").write_text(text)
    with pytest.raises(C.ProfileError) as e:
        C.start_cluster("bad")
    assert message in str(e.value) and "bad" in str(e.value)
    assert C.list_clusters() == []
    r = mlscale("cluster", "start", "bad", "--foreground", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr and message in r.stderr


def test_bad_options_and_unknown_class(project, monkeypatch):
    monkeypatch.setenv("MLSCALE_CLUSTER_CLASSES", "distributed.NoSuchCluster,no_such_package.Cluster")
    C.settings.cache_clear()
    with pytest.raises(C.ClusterError, match="unexpected keyword argument 'no_such_option'"):
        C.start_cluster("local", no_such_option=1)
    with pytest.raises(C.ProfileError, match="bad options for distributed.SSHCluster"):
        C.start_cluster("ssh", no_such_option=1)
    with pytest.raises(C.ProfileError, match="has no cluster class"):
        C.start_cluster({"cls": "distributed.NoSuchCluster"})
    with pytest.raises(ImportError, match="pip install"):
        C.start_cluster({"cls": "no_such_package.Cluster"})
    with pytest.raises(C.ProfileError, match="available: "):
        C.start_cluster("does-not-exist")


# ---------------------------------------------------------------- GPU detection

def test_auto_says_what_it_picked_and_why(project):
    g = C.gpu_info()
    name, reason = C.choose_profile("auto")
    if g.count == 0:
        assert name == "local" and "no GPU" in reason
    assert reason


@pytest.mark.skipif(C.gpu_info().count > 0, reason="this machine has a GPU; the no-GPU error path cannot be shown here")
def test_local_gpu_without_gpu_is_a_clear_error(project):
    with pytest.raises(C.ClusterError) as e:
        C.start_cluster("local-gpu")
    assert "needs an NVIDIA GPU" in str(e.value) and "start_cluster('local')" in str(e.value)
    r = mlscale("cluster", "start", "local-gpu", "--foreground", check=False)
    assert r.returncode == 1 and "needs an NVIDIA GPU" in r.stderr and "Traceback" not in r.stderr
    assert C.list_clusters() == []


def test_cuda_visible_devices_hides_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    g = C.gpu_info()
    assert g.count == 0 and "CUDA_VISIBLE_DEVICES" in g.reason


@pytest.mark.gpu
@pytest.mark.skipif(C.gpu_info().count == 0, reason=f"no NVIDIA GPU visible: {C.gpu_info().reason}")
def test_local_gpu_cluster_on_a_gpu_machine(project):
    with C.start_cluster("auto") as c:
        assert c.profile.name == "local-gpu" and c.gpu
        assert len(c.workers()) == C.gpu_info().count


# ---------------------------------------------------------------- handle and registry

def test_handle_context_manager_scale_adapt_and_registry(project):
    with C.start_cluster("local", n_workers=1, name="h1") as c:
        assert c.client.submit(lambda x: x + 1, 1).result() == 2
        assert c.dashboard_link.startswith("http://")
        (rec,) = C.list_clusters(details=True)
        assert (rec.name, rec.profile, rec.owner_pid, rec.workers) == ("h1", "local", os.getpid(), 1)
        c.scale(2).wait_for_workers(2)
        assert len(c.workers()) == 2
        c.adapt(minimum=1, maximum=2)
        assert "h1" in c._repr_html_() and "workers" in c._repr_html_()
        with pytest.raises(C.ClusterError, match="already running"):
            C.start_cluster("local", n_workers=1, name="h1")
        assert [r.name for r in C.list_clusters()] == ["h1"], "a refused duplicate must leave the original registered"
    assert C.list_clusters() == []


def test_cli_start_list_scale_adapt_stop(project):
    r = mlscale("cluster", "start", "local", "-n", "1", "--name", "cli1")
    assert "tcp://127.0.0.1:" in r.stdout
    try:
        rec = C.get_cluster("cli1")
        assert rec.owner_pid != os.getpid()
        mlscale("cluster", "scale", "cli1", "2")
        wait_for(lambda: C.list_clusters(details=True)[0].workers == 2, what="2 workers")
        listed = json.loads(mlscale("cluster", "list", "--json").stdout)
        assert listed[0]["name"] == "cli1" and listed[0]["workers"] == 2
        mlscale("cluster", "adapt", "cli1", "--minimum", "1", "--maximum", "2")
        bad = mlscale("cluster", "scale", "nope", "2", check=False)
        assert bad.returncode == 1 and "no running cluster named 'nope'" in bad.stderr and "cli1" in bad.stderr
    finally:
        mlscale("cluster", "stop", "cli1")
    assert C.list_clusters() == []
    assert not C.scheduler_alive(rec.scheduler_address)


KERNEL = textwrap.dedent("""
    import sys, time
    from mlscale_sdk.clusters import start_cluster
    if __name__ == "__main__":
        c = start_cluster("local", n_workers=1, name=sys.argv[1])
        print("READY", flush=True)
        while not c._closing: time.sleep(0.2)
""")


def test_cluster_started_in_another_process_is_seen_scaled_and_stopped(project):
    "dask-labextension cannot see clusters started from code in another kernel; we can."
    script = project / "kernel.py"
    script.write_text(KERNEL)
    p = subprocess.Popen([sys.executable, str(script), "k1"], stdout=subprocess.PIPE, text=True, cwd=project)
    try:
        assert p.stdout.readline().strip() == "READY"
        (rec,) = C.list_clusters()
        assert rec.name == "k1" and rec.owner_pid == p.pid
        C.scale_cluster("k1", 2)
        wait_for(lambda: C.list_clusters(details=True)[0].workers == 2, what="scale from another process")
        C.stop_cluster("k1")
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
    assert C.list_clusters() == []


def test_dead_owner_is_pruned(project):
    script = project / "kernel.py"
    script.write_text(KERNEL)
    p = subprocess.Popen([sys.executable, str(script), "doomed"], stdout=subprocess.PIPE, text=True, cwd=project, start_new_session=True)
    assert p.stdout.readline().strip() == "READY"
    assert [r.name for r in C.list_clusters()] == ["doomed"]
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    wait_for(lambda: C.list_clusters() == [], timeout=20, what="the dead cluster to be pruned")


def test_workers_do_not_reimport_a_heavy_main(project):
    "A script's top-level imports must not run again in every spawned worker."
    marker = project / "imports.log"
    (project / "heavy_mod.py").write_text(f"import os\nopen({str(marker)!r}, 'a').write(str(os.getpid()) + '\\n')\n")
    script = project / "main_script.py"
    script.write_text(textwrap.dedent("""
        import heavy_mod
        from mlscale_sdk.clusters import start_cluster
        if __name__ == "__main__":
            with start_cluster("local", n_workers=2, register=False) as c:
                c.wait_for_workers(2)
                assert c.client.submit(sum, [1, 2]).result() == 3
    """))
    env = {**os.environ, "PYTHONPATH": str(project)}
    subprocess.run([sys.executable, str(script)], check=True, env=env, cwd=project, timeout=120)
    assert len(marker.read_text().split()) == 1, "workers re-imported __main__"
    marker.unlink()
    env["MLSCALE_WORKERS_IMPORT_MAIN"] = "1"  # the default multiprocessing behaviour, to show the check can fail
    subprocess.run([sys.executable, str(script)], check=True, env=env, cwd=project, timeout=120)
    assert len(marker.read_text().split()) == 3


# ---------------------------------------------------------------- remote profile against real processes

@pytest.fixture
def dask_processes(tmp_path):
    "A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    wait_for(lambda: C.scheduler_alive(addr), what="dask scheduler")
    for i in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--name", f"w{i}", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    yield addr
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def test_remote_profile_connects_and_computes(project, dask_processes, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_processes)
    with C.start_cluster("remote", name="r1") as c:
        c.wait_for_workers(2, timeout=30)
        assert sorted(w["name"] for w in c.workers().values()) == ["w0", "w1"]
        futs = c.client.map(lambda x: x * x, range(10))
        assert sum(c.client.gather(futs)) == 285
        assert [r.name for r in C.list_clusters()] == ["r1"]
        with pytest.raises(C.ClusterError, match="managed by whoever started it"):
            c.scale(4)
    assert C.scheduler_alive(dask_processes), "closing a remote handle must not kill somebody else's scheduler"
    assert C.list_clusters() == []


def test_remote_unreachable_fails_fast(project):
    port = free_port()
    t = time.monotonic()
    with pytest.raises(C.ClusterError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        C.start_cluster("remote", address=f"tcp://127.0.0.1:{port}", timeout=3)
    assert time.monotonic() - t < 5
    with pytest.raises(C.ClusterError, match="not a scheduler address"):
        C.start_cluster("remote", address="localhost")


def test_remote_silent_listener_times_out_bounded(project):
    "Something accepts TCP but never speaks Dask: fail after the timeout, not hang."
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    try:
        t = time.monotonic()
        with pytest.raises(C.ClusterError, match="did not answer within 2s"):
            C.start_cluster("remote", address=f"tcp://127.0.0.1:{port}", timeout=2)
        assert time.monotonic() - t < 15
    finally:
        srv.close()
    assert C.list_clusters() == []


def test_ssh_profile(project):
    import shutil
    if not shutil.which("sshd") or not (Path.home() / ".ssh" / "authorized_keys").exists():
        pytest.skip("no SSH server with key login on localhost; the ssh profile is only validated")
    with C.start_cluster("ssh", name="s1") as c:
        c.wait_for_workers(1, timeout=60)


def test_the_handle_client_becomes_the_default_like_Client_cluster(project):
    "`df.compute()` after `start_cluster()` runs on the cluster's workers, as after `Client(LocalCluster())`."
    import dask
    from distributed import default_client
    with C.start_cluster("local", n_workers=1, threads_per_worker=1, register=False) as h:
        assert default_client() is h.client
        assert dask.delayed(os.getpid)().compute() != os.getpid()   # ran in the worker process
    with pytest.raises(ValueError, match="No clients found"):
        default_client()   # closing the cluster let go of it
    with C.start_cluster("local", n_workers=1, threads_per_worker=1, register=False, set_as_default=False) as h:
        assert h.client.submit(os.getpid).result() != os.getpid()
        with pytest.raises(ValueError, match="No clients found"):
            default_client()


def test_scheduler_workers_is_never_the_clients_empty_cache(project):
    "`Client.scheduler_info()` can return the periodic refresh's worker-less cache; watchdogs must not use it."
    import dask
    from distributed import Client
    with dask.config.set({"distributed.client.scheduler-info-interval": "5ms"}):
        with C.start_cluster("local", n_workers=2, threads_per_worker=1, register=False, set_as_default=False) as h:
            h.wait_for_workers(2)
            with Client(h.scheduler_address, set_as_default=False) as c:
                asked = [len(C.scheduler_workers(c)) for _ in range(300)]
                deadline, cached = time.monotonic() + 10, []
                while 0 not in cached and time.monotonic() < deadline:
                    cached.append(len(c.scheduler_info(n_workers=-1)["workers"]))
    assert set(asked) == {2}
    assert 0 in cached, f"upstream fixed the race: scheduler_info() never came back empty in {len(cached)} calls"


# ---------------------------------------------------------------- untrusted input (issue 11)

def _no_cluster_left():
    assert C.list_clusters() == []


def test_only_dask_cluster_managers_are_built(project, tmp_path_factory):
    "A profile, an inline spec or a job spec naming any other class is refused before anything is imported."
    from mlscale_sdk.jobs import JobValidationError, make_spec
    marker = tmp_path_factory.mktemp("outside") / "ran"
    popen = {"cls": "subprocess.Popen", "options": {"args": ["touch", str(marker)]}}
    with pytest.raises(C.ClusterValidationError) as e:
        C.start_cluster(popen)
    msg = str(e.value)
    assert "subprocess.Popen" in msg and "distributed.LocalCluster" in msg and "cluster_classes" in msg
    assert "MLSCALE_CLUSTER_CLASSES" in msg
    with pytest.raises(C.ClusterValidationError, match="not an allowed cluster"):
        C.start_cluster({"cls": "antigravity.Cluster"})
    assert "antigravity" not in sys.modules, "the class must be checked before its module is imported"
    (project / "clusters").mkdir()
    (project / "clusters" / "evil.yaml").write_text(f"cls: subprocess.Popen\noptions: {{args: [touch, '{marker}']}}\n")
    with pytest.raises(C.ClusterValidationError, match="not an allowed cluster"):
        C.start_cluster("evil")
    with pytest.raises(JobValidationError, match="not an allowed cluster"):
        make_spec(name="j", notebook="nb.ipynb", cluster=popen)
    r = mlscale("cluster", "start", "evil", "--foreground", check=False)
    assert r.returncode == 1 and "not an allowed cluster" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
    _no_cluster_left()


def test_allowed_classes_extend_by_setting_and_must_be_cluster_managers(project, monkeypatch):
    alias = {"cls": "distributed.deploy.local.LocalCluster", "options": {"n_workers": 1, "processes": False}}
    with pytest.raises(C.ClusterValidationError, match="not an allowed cluster"):
        C.start_cluster(alias, register=False, set_as_default=False)
    monkeypatch.setenv("MLSCALE_CLUSTER_CLASSES", "distributed.deploy.local.LocalCluster,collections.OrderedDict")
    C.settings.cache_clear()
    assert "collections.OrderedDict" in C.allowed_cluster_classes()
    with pytest.raises(C.ClusterValidationError, match="not a Dask cluster manager"):
        C.start_cluster({"cls": "collections.OrderedDict"})
    with C.start_cluster(alias, register=False, set_as_default=False) as h:
        assert h.client.submit(lambda: 2).result() == 2
    inline = C.get_profile({"cls": "distributed.LocalCluster", "options": {"n_workers": 1}})
    assert (inline.options["host"], inline.options["dashboard_address"]) == ("127.0.0.1", "127.0.0.1:0")


@pytest.mark.parametrize("profile", [
    "../clusters/local", "local.yaml", "/etc/passwd", "clusters/local.yaml", "..", "a b", "", "x" * 65,
])
def test_profiles_are_chosen_by_name_never_by_path(project, profile):
    from mlscale_sdk.jobs import JobValidationError, make_spec
    with pytest.raises(C.ClusterValidationError, match="profile name"):
        C.get_profile(profile)
    with pytest.raises(C.ClusterValidationError, match="profile name"):
        C.start_cluster(profile)
    with pytest.raises(C.ClusterValidationError, match="profile name"):
        C.start_detached(profile)
    with pytest.raises(JobValidationError, match="profile name"):
        make_spec(name="j", notebook="nb.ipynb", cluster=profile)
    _no_cluster_left()


def test_a_profile_file_outside_the_search_path_is_not_read(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "evil.yaml"
    outside.write_text("cls: distributed.LocalCluster\noptions: {n_workers: 1}\n")
    with pytest.raises(C.ClusterValidationError, match="profile name"):
        C.start_detached(str(outside))
    assert not (project / ".mlscale" / "clusters").exists() or not list((project / ".mlscale" / "clusters").iterdir())
    # a Python caller may still load a file it chose, as a Path or a Profile object
    assert C.get_profile(outside).cls == "distributed.LocalCluster"
    assert C.get_profile(C.get_profile(outside)).name == "evil"


@pytest.mark.parametrize("overrides, key", [
    ({"preload": ["/tmp/evil.py"]}, "preload"),
    ({"worker_class": "subprocess.Popen"}, "worker_class"),
    ({"plugins": ["x"]}, "plugins"),
    ({"scheduler_kwargs": {"preload": "x"}}, "scheduler_kwargs.preload"),
    ({"worker_options": {"Preload-Argv": ["x"]}}, "worker_options.Preload-Argv"),
    ({"security": {"tls_ca_file": "/etc/passwd"}}, "security"),
    ({"local_directory": "/tmp/elsewhere"}, "local_directory"),
    ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "env"),
    ({"dashboard_address": ":0"}, "dashboard_address"),
    ({"host": "0.0.0.0"}, "host"),
    ({"address": "${AWS_SECRET_ACCESS_KEY}"}, "address"),
])
def test_options_that_load_code_come_only_from_profile_files(project, overrides, key):
    from mlscale_sdk.jobs import JobValidationError, make_spec
    with pytest.raises(C.ClusterValidationError) as e:
        C.start_cluster("local", register=False, **overrides)
    assert repr(key) in str(e.value) and "profile file" in str(e.value)
    with pytest.raises(C.ClusterValidationError, match="profile file"):
        C.start_detached("local", **overrides)
    with pytest.raises(C.ClusterValidationError, match="profile file"):
        C.start_cluster({"cls": "distributed.LocalCluster", "options": {"n_workers": 1, **overrides}})
    with pytest.raises(JobValidationError, match="profile file"):
        make_spec(name="j", notebook="nb.ipynb", cluster={"cls": "distributed.LocalCluster", "options": overrides})
    _no_cluster_left()


def test_overrides_are_json_values_and_do_not_collide_with_arguments(project):
    with pytest.raises(C.ClusterValidationError, match="JSON"):
        C.start_cluster("local", register=False, n_workers=object())
    with pytest.raises(C.ClusterValidationError, match="too"):
        C.start_cluster("local", register=False, n_workers="x" * 5000)
    for key in ("name", "profile", "register", "set_as_default", "ready_file", "timeout"):
        with pytest.raises(C.ClusterValidationError, match=f"{key!r}.*argument"):
            C.start_detached("local", overrides={key: 1})
    _no_cluster_left()
    assert not (project / ".mlscale" / "clusters").exists() or not list((project / ".mlscale" / "clusters").iterdir())


def test_a_profile_file_may_set_code_loading_options(project):
    (project / "clusters").mkdir()
    (project / "clusters" / "trusted.yaml").write_text(
        "cls: distributed.LocalCluster\n"
        f"options: {{n_workers: 1, dashboard_address: '127.0.0.1:0', local_directory: '{project / 'scratch'}',"
        " preload: []}\n")
    with C.start_cluster("trusted", register=False, set_as_default=False) as h:
        assert h.client.submit(lambda: 1).result() == 1
        assert (project / "scratch").is_dir()


@pytest.mark.parametrize("name", ["../../outside/victim", "a/b", "..", "/abs", ".hidden", "x" * 65, "", 3])
def test_cluster_names_cannot_write_outside_the_state_dir(project, tmp_path_factory, name):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "victim.log").write_text("precious")
    (outside / "victim.ready").write_text("keep me")
    if name == "../../outside/victim":   # relative to <project>/.mlscale/clusters
        name = os.path.relpath(outside / "victim", project / ".mlscale" / "clusters")
    with pytest.raises(C.ClusterValidationError, match="cluster name"):
        C.start_detached("local", name=name)
    with pytest.raises(C.ClusterValidationError, match="cluster name"):
        C.start_cluster("local", name=name)
    assert (outside / "victim.log").read_text() == "precious" and (outside / "victim.ready").read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.log", "victim.ready"]
    if isinstance(name, str):   # the CLI goes through the same checks
        r = mlscale("cluster", "start", "local", "--name", name, check=False)
        assert r.returncode == 1 and "cluster name" in r.stderr and "Traceback" not in r.stderr
        assert (outside / "victim.log").read_text() == "precious"
    _no_cluster_left()


def test_state_files_resolve_under_the_state_dir(project):
    p = C._state_file("ok-name.1", ".log")
    assert p.parent == (project / ".mlscale" / "clusters").resolve() and p.name == "ok-name.1.log"
    with pytest.raises(C.ClusterValidationError):
        C._state_file("../x", ".log")


def _listening(pids):
    import psutil
    out = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_local_cluster_listens_on_loopback_only(project, monkeypatch):
    import psutil
    from urllib.parse import urlparse
    before = {a.port for a in _listening([os.getpid()])}
    with C.start_cluster("local", n_workers=1, register=False, set_as_default=False) as h:
        h.wait_for_workers(1)
        assert h.scheduler_address.startswith("tcp://127.0.0.1:")
        assert urlparse(h.dashboard_link).hostname == "127.0.0.1"
        pids = [os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))]
        new = [a for a in _listening(pids) if a.port not in before]
        ports = {a.port for a in new}
        assert C._host_port(h.scheduler_address)[1] in ports and urlparse(h.dashboard_link).port in ports
        assert new and all(a.ip == "127.0.0.1" for a in new), new
    # the setting opens them, for every shipped profile that listens
    monkeypatch.setenv("MLSCALE_LISTEN_ADDRESS", "0.0.0.0")
    C.settings.cache_clear()
    opts = C.profile_options(C.get_profile("local"))
    assert (opts["host"], opts["dashboard_address"]) == ("0.0.0.0", "0.0.0.0:0")
    assert C.profile_options(C.get_profile("ssh"))["scheduler_options"]["dashboard_address"] == "0.0.0.0:0"
    assert C.profile_options(C.get_profile("local-gpu"))["dashboard_address"] == "0.0.0.0:0"


def test_shipped_profiles_do_not_bind_all_interfaces():
    shipped = sorted((Path(C.__file__).resolve().parents[2] / "clusters").glob("*.yaml"))   # clusters is a package
    assert shipped
    for p in shipped:
        assert '":0"' not in p.read_text() and "0.0.0.0" not in p.read_text(), p
