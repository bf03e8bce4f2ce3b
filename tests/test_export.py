"""Exporters: a job as a Kubernetes CronJob (checked with kubernetes-validate) or an Airflow DAG (loaded by a real
Airflow's DagBag in its own cached venv); hostile notebook names, parameters and tags come out escaped."""
import ast, fcntl, json, os, subprocess, sys
from pathlib import Path
import nbformat
import pytest
import yaml

from conftest import BIN, ROOT, mlscale
from test_jobs import make_nb
from mlscale_sdk import jobs as J


def _promote_nightly(project):
    return J.promote(make_nb(project / "exp.ipynb"), name="Nightly_Retrain", schedule="30 2 * * *",
                     timezone="America/New_York", parameters={"rows": 3, "label": "a b"}, retries=2, retry_delay=30,
                     timeout=600, max_concurrent=1, catchup="none")


def test_export_k8s_and_airflow_are_validated(project):
    _promote_nightly(project)
    text = J.export("Nightly_Retrain", to="k8s")
    doc = yaml.safe_load(text)
    assert J.validate_cronjob(doc) == []
    s = doc["spec"]
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == ("batch/v1", "CronJob", "mlscale-nightly-retrain")
    assert (s["schedule"], s["timeZone"], s["concurrencyPolicy"], s["startingDeadlineSeconds"]) == ("30 2 * * *", "America/New_York", "Forbid", 60)
    js = s["jobTemplate"]["spec"]
    assert js["backoffLimit"] == 2 and js["activeDeadlineSeconds"] == 600
    cmd = js["template"]["spec"]["containers"][0]["command"]
    i = cmd.index("papermill")
    assert cmd[i + 1] == f".mlscale/jobs/Nightly_Retrain/{J.get_job('Nightly_Retrain').version}.ipynb"
    assert yaml.safe_load(cmd[cmd.index("-y") + 1]) == {"rows": 3, "label": "a b"}
    # the papermill command really runs the snapshot (same command the CronJob runs)
    out = project / "k8s-out.ipynb"
    r = subprocess.run([str(BIN / "papermill"), *cmd[i + 1:i + 2], str(out), *cmd[i + 3:]], cwd=project, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "a b 3.0" in nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"]
    dag = J.export("Nightly_Retrain", to="airflow")
    compile(dag, "dag.py", "exec")
    for frag in ("max_active_runs=1", "catchup=False", "'retries': 2", "timedelta(seconds=30.0)", "'30 2 * * *'", "America/New_York"):
        assert frag in dag, frag
    r = mlscale("jobs", "export", "Nightly_Retrain", "--to", "k8s", env={"MLSCALE_HOME": str(project)})
    assert yaml.safe_load(r.stdout)["kind"] == "CronJob"


def test_what_cannot_be_expressed_is_an_error(project):
    J.promote(make_nb(project / "sec.ipynb"), schedule="*/5 * * * * *")
    with pytest.raises(J.JobValidationError, match="no seconds field"):
        J.export("sec", to="k8s")
    with pytest.raises(J.JobValidationError, match="no seconds field"):
        J.export("sec", to="airflow")
    with pytest.raises(J.JobValidationError, match="unknown export target 'nomad'"):
        J.export("sec", to="nomad")


def test_validate_cronjob_is_the_kubernetes_schema(project):
    _promote_nightly(project)
    doc = yaml.safe_load(J.export("Nightly_Retrain", to="k8s"))
    assert J.validate_cronjob(doc) == []
    bad = dict(doc, spec=dict(doc["spec"], concurrencyPolicy="Sometimes"))
    [err] = J.validate_cronjob(bad)
    assert err == "spec.concurrencyPolicy: 'Sometimes' is not one of Allow, Forbid, Replace", err
    # strict: a misspelt field is an error, not silently dropped (the hand-written check let both through)
    [err] = J.validate_cronjob(dict(doc, spec=dict(doc["spec"], schedul="* * * * *")))
    assert "spec: Additional properties are not allowed ('schedul' was unexpected)" == err
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = dict(pod["containers"][0], resources={"limits": {"cpu": [1]}})
    tmpl = dict(doc["spec"]["jobTemplate"]["spec"]["template"], spec=dict(pod, containers=[c]))
    [err] = J.validate_cronjob(dict(doc, spec=dict(doc["spec"], jobTemplate={"spec": {"template": tmpl}})))
    assert err.startswith("spec.jobTemplate.spec.template.spec.containers.0.resources.limits.cpu:"), err
    assert J.validate_cronjob(dict(doc, kind="Pod")) == ["kind must be CronJob (apiVersion batch/v1), not 'Pod'"]


# ---------------------------------------------------------------- hostile names

EVIL_NB = [
    ("triple_quote", 'nbs/x"""+__import__("os").system("touch PWNED")+""".ipynb'),
    ("newline_yaml", "nbs/a\nevil: injected\n#b.ipynb"),
    ("newline_py", "nbs/a\nimport os; os.system('touch PWNED')\n#.ipynb"),
    # (braces in a notebook path: papermill formats input paths with the parameters, so promote refuses them;
    # braces go into the project dir, the parameters and the tags instead)
    ("quotes_shell", "nbs/it's $(id) `id` \\ %s.ipynb"),
    ("unicode", "nbs/ünï cødé ✓ \u2028 λ.ipynb"),
]
EVIL_PARAMS = {"label": '{{ dag_run.conf }}"""\'\n{% endraw %}', "rows": 1}
EVIL_TAGS = {"team": '"""\n}', "x{": "y'"}


def _calls(tree):
    "The dotted names of everything the module calls."
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            out.add(ast.unparse(n.func))
    return out


def _kwargs(tree, fn):
    "The keyword arguments of the call to `fn`, as source."
    [call] = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == fn]
    return {k.arg: k.value for k in call.keywords}


def _literal(node):
    "The value of a literal, or of `literal(<literal>)`."
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "literal":
        node = node.args[0]
    return ast.literal_eval(node)


@pytest.mark.parametrize("case, notebook", EVIL_NB, ids=[e[0] for e in EVIL_NB])
def test_hostile_names_are_escaped(project, case, notebook):
    nb = make_nb(project / notebook)
    job = J.promote(nb, name="evil", schedule="0 3 * * *", parameters=EVIL_PARAMS, tags=EVIL_TAGS)
    assert job.spec.notebook == notebook
    # Kubernetes: what is parsed back is exactly the document; user text only in values, never in comments
    text = J.export("evil", to="k8s", workdir="/pro'ject\n# x")
    doc = yaml.safe_load(text)
    assert sorted(doc) == ["apiVersion", "kind", "metadata", "spec"]
    assert doc["metadata"]["annotations"]["mlscale.io/notebook"] == notebook
    assert doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["workingDir"] == "/pro'ject\n# x"
    cmd = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--cwd") + 1] == str(Path(notebook).parent)
    assert yaml.safe_load(cmd[cmd.index("-y") + 1]) == EVIL_PARAMS
    J.promote(make_nb(project / "plain.ipynb"), name="plain", schedule="0 3 * * *", parameters={"rows": 1})
    comments = lambda t: [line for line in t.splitlines() if line.startswith("#")]
    assert comments(text) == comments(J.export("plain", to="k8s")), text
    assert J.validate_cronjob(doc) == []
    # Airflow: the module calls nothing but what a DAG needs, and every value reads back as it was given
    root = "/srv/{{ ts }}/{% raw %}/it's \"q\""
    src = J.export("evil", to="airflow", project_dir=root)
    tree = ast.parse(src)
    assert _calls(tree) <= {"DAG", "PapermillOperator", "CronTriggerTimetable", "pendulum.datetime", "timedelta",
                            "literal", "os.chdir"}, _calls(tree)
    assert notebook not in (ast.get_docstring(tree) or "")
    op, dag = _kwargs(tree, "PapermillOperator"), _kwargs(tree, "DAG")
    assert _literal(op["input_nb"]) == f"{root}/.mlscale/jobs/evil/{job.version}.ipynb"
    assert _literal(op["parameters"]) == EVIL_PARAMS
    assert ast.unparse(op["parameters"]).startswith("literal(")   # no Jinja rendering of user text
    assert _literal(dag["tags"]) == ["mlscale", 'team="""\n}', "x{=y'"]
    assert _literal(dag["user_defined_macros"]) == {"mlscale_root": root}
    consts = {t.id: ast.literal_eval(a.value) for a in tree.body if isinstance(a, ast.Assign) for t in a.targets}
    assert consts["MLSCALE_JOB"]["notebook"] == notebook and consts["WORKDIR"] == str(Path(root) / Path(notebook).parent)
    assert not (project / "PWNED").exists()


# ---------------------------------------------------------------- the real Airflow

AIRFLOW_REQS = ["apache-airflow==3.3.*", "apache-airflow-providers-papermill==3.13.*"]
AIRFLOW_VENV = ROOT / ".cache" / "airflow-venv"

LOAD_DAGS = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])   # Airflow 3.3 has no include_examples: AIRFLOW__CORE__LOAD_EXAMPLES=False
assert all(d.fileloc.startswith(sys.argv[1]) for d in bag.dags.values()), "example DAGs were loaded"
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    t = dag.get_task("run_notebook")
    DagSerialization.to_dict(dag)   # what the DAG processor stores must serialize too
    out["dags"][dag_id] = dict(
        timetable=type(dag.timetable).__name__, schedule=dag.timetable.expression, timezone=str(dag.timetable.timezone),
        start_date=dag.start_date.isoformat(), catchup=dag.catchup, max_active_runs=dag.max_active_runs,
        paused=dag.is_paused_upon_creation, tags=sorted(dag.tags), retries=t.retries,
        retry_delay=t.retry_delay.total_seconds(), backoff=t.retry_exponential_backoff,
        timeout=t.execution_timeout.total_seconds() if t.execution_timeout else None,
        input_nb=t.input_nb.value, parameters=t.parameters.value, output_nb=t.output_nb,
        macros=dag.user_defined_macros, operator=type(t).__name__, pre_execute=t._pre_execute_hook is not None)
print("RESULT " + json.dumps(out))
"""


def airflow_python() -> Path:
    "The python of a venv with the real Airflow and its papermill provider, made once and reused (lock + stamp)."
    AIRFLOW_VENV.parent.mkdir(exist_ok=True)
    py, stamp = AIRFLOW_VENV / "bin" / "python", AIRFLOW_VENV / ".mlscale-stamp"
    want = json.dumps(AIRFLOW_REQS)
    with open(AIRFLOW_VENV.parent / "airflow-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and py.exists():
            return py
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(AIRFLOW_VENV)], check=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *AIRFLOW_REQS], capture_output=True, text=True)
        assert r.returncode == 0, f"installing {AIRFLOW_REQS} failed:\n{r.stderr[-3000:]}"
        stamp.write_text(want)
    return py


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_exported_dag_loads_in_real_airflow(project, tmp_path_factory):
    py = airflow_python()
    _promote_nightly(project)
    evil = EVIL_NB[0][1]
    J.promote(make_nb(project / evil), name="evil", schedule="*/15 * * * *", timezone="Asia/Kolkata",
              parameters=EVIL_PARAMS, tags=EVIL_TAGS, retries=1, catchup="all", max_concurrent=3)
    dags = tmp_path_factory.mktemp("dags")
    root = "/srv/{{ ts }}/{% raw %}/it's \"q\""
    (dags / "Nightly_Retrain.py").write_text(J.export("Nightly_Retrain", to="airflow"))
    (dags / "evil.py").write_text(J.export("evil", to="airflow", project_dir=root))
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db", AIRFLOW__CORE__UNIT_TEST_MODE="True")
    r = subprocess.run([str(py), "-c", LOAD_DAGS, str(dags)], capture_output=True, text=True, env=env, cwd=home, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    [line] = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    got = json.loads(line[len("RESULT "):])
    assert got["import_errors"] == {}
    n, e = got["dags"]["mlscale_Nightly_Retrain"], got["dags"]["mlscale_evil"]
    job = J.get_job("Nightly_Retrain")
    assert (n["timetable"], n["schedule"], n["timezone"]) == ("CronTriggerTimetable", "30 2 * * *", "America/New_York")
    assert n["start_date"].startswith(job.versions[-1]["created_at"][:10])   # the promote time, not "now"
    assert (n["catchup"], n["max_active_runs"], n["retries"], n["retry_delay"], n["timeout"]) == (False, 1, 2, 30.0, 600.0)
    assert (n["operator"], n["pre_execute"], n["backoff"]) == ("PapermillOperator", True, 2.0)
    assert n["input_nb"] == f"{project}/.mlscale/jobs/Nightly_Retrain/{job.version}.ipynb"
    assert n["output_nb"] == "{{ mlscale_root }}/.mlscale/runs/airflow-Nightly_Retrain-{{ ts_nodash }}/output.ipynb"
    assert n["macros"] == {"mlscale_root": str(project)}
    assert (e["schedule"], e["timezone"], e["catchup"], e["max_active_runs"], e["timeout"]) == ("*/15 * * * *", "Asia/Kolkata", True, 3, None)
    assert e["input_nb"] == f"{root}/.mlscale/jobs/evil/{J.get_job('evil').version}.ipynb"
    assert e["macros"] == {"mlscale_root": root} and e["parameters"] == EVIL_PARAMS and e["tags"] == sorted(["mlscale", 'team="""\n}', "x{=y'"])
    assert not (project / "PWNED").exists() and not (home / "PWNED").exists()
    # the same export is the same file: nothing in it moves with the clock
    assert (dags / "Nightly_Retrain.py").read_text() == J.export("Nightly_Retrain", to="airflow")
