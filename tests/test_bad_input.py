"""The server and CLI as a trust boundary: hundreds of malformed requests over every route and method of the API and
the CLI commands. Each must answer a 4xx (exit 1/2 for the CLI) with a message, leave the store and the project's
files unchanged, write nothing next to the project, and open nothing listening beyond loopback.
One real `jupyter server` (subprocess) for the module, on a throw-away project."""
import collections, json, os, secrets, signal, sqlite3, subprocess, sys, time
from pathlib import Path
import nbformat
import psutil
import pytest
import requests

from conftest import BIN, free_port, wait_for

API = "mlscale/api"
JOB = "real"                     # a job that exists: a body-taking route can only refuse it in the parser
SECRET = "s3cretpw"              # inside a webhook URL: no message may echo it
COUNTS = {"requests": 0, "status": collections.Counter(), "endpoint": collections.Counter(), "cli": collections.Counter()}



def make_nb(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    c = nbformat.v4.new_code_cell("rows = 10  # rows\nlabel = 'x'")
    c.metadata["tags"] = ["parameters"]
    nb.cells = [c, nbformat.v4.new_code_cell("print(label, rows)")]
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------- one server for the module

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("boundary")
    project, sibling = base / "project", base / "sibling"
    project.mkdir(); sibling.mkdir()
    (sibling / "keep.txt").write_text("untouched")
    make_nb(project / "nb.ipynb")
    prof = project / "xdg" / "mlscale" / "clusters"
    prof.mkdir(parents=True)
    (prof / "evil.yaml").write_text("description: not a cluster\ncls: subprocess.Popen\noptions: {args: [touch, pwned]}\n")
    token, port = secrets.token_hex(16), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JUPYTER_"))}
    env.update(MLSCALE_HOME=str(project), XDG_CONFIG_HOME=str(project / "xdg"), JUPYTER_CONFIG_DIR=str(project / ".jupyter"),
               JUPYTER_DATA_DIR=str(project / ".jupyter-data"), JUPYTER_RUNTIME_DIR=str(project / ".jupyter-rt"),
               IPYTHONDIR=str(project / ".ipython"), MLSCALE_METRICS_PORT="off")
    log = open(base / "server.log", "w")
    p = subprocess.Popen([str(BIN / "jupyter"), "server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                          f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project}",
                          "--ServerApp.jpserver_extensions=mlscale_sdk=True", "--allow-root"],
                         cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    url = f"http://127.0.0.1:{port}/{API}"

    def up():
        try:
            return s.get(f"{url}/jobs", timeout=30).status_code == 200
        except requests.ConnectionError:
            assert p.poll() is None, (base / "server.log").read_text()
            return False
    wait_for(up, timeout=90, what="jupyter server")
    r = s.post(f"{url}/jobs", json={"notebook": "nb.ipynb", "name": JOB, "schedule": "0 3 * * *"})
    assert r.status_code == 201, r.text
    old = {k: os.environ.get(k) for k in ("MLSCALE_HOME", "XDG_CONFIG_HOME")}
    os.environ.update(MLSCALE_HOME=str(project), XDG_CONFIG_HOME=str(project / "xdg"))
    from mlscale_sdk import tracking
    from mlscale_sdk.config import settings
    settings.cache_clear(); tracking.reset_cache()
    try:
        yield {"url": url, "session": s, "proc": p, "project": project, "base": base}
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        settings.cache_clear(); tracking.reset_cache()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


def store_dump(project) -> dict:
    "Every row of every table of the project's state store."
    with sqlite3.connect(f"file:{project / '.mlscale' / 'state.db'}?mode=ro", uri=True) as c:
        names = [r[0] for r in c.execute("select name from sqlite_master where type='table' order by name")]
        rows = {n: sorted(map(repr, c.execute(f'select * from "{n}"'))) for n in names}
    return {n: r for n, r in rows.items() if r}  # a table created empty on first use is no change


_VOLATILE = (".jupyter", ".jupyter-data", ".jupyter-rt", ".ipython", "server.log")


def files(root, skip=()) -> set:
    "Paths and sizes under `root` (skipping `skip` names at the top and the store's own files)."
    out = set()
    for p in Path(root).rglob("*"):
        rel = p.relative_to(root)
        if rel.parts[0] in skip or rel.parts[0] in _VOLATILE or p.name.startswith(("state.db", "mlflow.db")) \
                or p.suffix == ".lock":  # the stores' lock files, created on first use
            continue
        out.add((rel.as_posix(), p.stat().st_size if p.is_file() else -1))
    return out


def listening_beyond_loopback(proc) -> list:
    "LISTEN sockets of the server process tree on an address other than loopback."
    bad = []
    for q in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        try:
            conns = q.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        bad += [(q.pid, c.laddr) for c in conns if c.status == psutil.CONN_LISTEN
                and not (c.laddr.ip.startswith("127.") or c.laddr.ip == "::1")]
    return bad


@pytest.fixture(scope="module", autouse=True)
def print_counts(request):
    yield
    lines = [f"bad-input suite: {COUNTS['requests']} HTTP requests, {sum(COUNTS['cli'].values())} CLI invocations",
             "  per status: " + ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS["status"].items())),
             *(f"  {v:4d}  {k}" for k, v in sorted(COUNTS["endpoint"].items())),
             "  CLI per exit code: " + ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS["cli"].items()))]
    print("\n" + "\n".join(lines))
    request.config._mlscale_bad_input_summary = lines
  # conftest's pytest_terminal_summary shows it again


# ---------------------------------------------------------------- the cases

DEEP = "[" * 40 + "]" * 40
GENERIC_BODIES = [  # (label, raw body) refused by the one parser on every route, whatever the route takes
    ("invalid json", b"{bad"), ("truncated", b'{"a": '), ("array", b"[1, 2]"), ("string", b'"x"'), ("number", b"42"),
    ("null", b"null"), ("true", b"true"), ("deep 40", ('{"a": ' + DEEP + "}").encode()),
    ("deep 100k", b"[" * 100_000 + b"]" * 100_000), ("NaN", b'{"a": NaN}'), ("Infinity", b'{"a": Infinity}'),
    ("1e999", b'{"a": 1e999}'), ("5000 digits", b'{"a": ' + b"7" * 5000 + b"}"), ("lone surrogate", b'{"\\udc80": 1}'),
    ("invalid utf-8", b'{"a": "\xff\xfe"}'), ("2 MiB", json.dumps({"a": "x" * (2 << 20)}).encode()),
    ("unknown field", b'{"zzz_unknown": 1}'), ("duplicate unknown", b'{"zz": 1, "zz": 2}'),
]
WRONG = {"str": "s", "int": 3, "float": 1.5, "bool": True, "null": None, "list": [1], "dict": {"k": 1}}
PY = {str: "str", int: "int", float: "float", bool: "bool", type(None): "null", list: "list", dict: "dict"}
NAMES = ["nope", "%2e%2e", "a%2Fb", "%00", "x" * 3000, "%ff%fe", "%20", "caf%C3%A9", "%27%3B%20drop%20table%20jobs",
         "%5C..%5Cx", "%0Aline"]


def example(template, name=JOB):
    return template.replace("{name}", name).replace("{run_id}", "r").replace("{job}", "j").replace("{metric}", "m")


def route_fields(template, method):
    "The body fields a route takes (from its body model in the server's contract) and a valid base body."
    from mlscale_sdk import api_models
    op = api_models.OPERATIONS.get((template, method))
    valid = {
        "/clusters": {"profile": "no-such-profile"},
        "/clusters/{name}/scale": {"n": 1},
        "/clusters/{name}/adapt": {"minimum": 0, "maximum": 1},
        "/jobs": {"notebook": "nb.ipynb", "name": "other"},
        "/jobs/{name}/run": {},
        "/mlflow/models/{name}/promote": {"version": 1},
    }
    if op is None or op.body is None:
        return {}, {}
    return api_models.fields_of_model(op.body), valid[template]


def http_cases():
    "(label, method, path, query, raw body) for every route and method."
    from mlscale_sdk import server
    out = []
    for template, handler in server.ROUTES:
        limits = template in (
            "/jobs/{name}/history", "/mlflow/runs", "/monitor/alerts", "/monitor/metrics/{job}/{metric}")
        for m in server.route_methods(handler):
            M, path = m.upper(), example(template)
            out.append((f"{M} {template} unknown query", M, path, "zzz=1", None))
            out.append((f"{M} {template} query token twice and unknown", M, path, "_xsrf=a&also=b", None))
            if M != "POST":
                out += [(f"{M} {template} body {lab}", M, path, "", body) for lab, body in GENERIC_BODIES[:8]]
            else:
                out += [(f"{M} {template} body {lab}", M, path, "", body) for lab, body in GENERIC_BODIES]
            if limits:
                out += [(f"{M} {template} limit={v!r}", M, path, f"limit={v}", None)
                        for v in ("lots", "0", "-1", "1e3", "", "9" * 40, "1.5", "100001", "%00", "1&limit=2")]
            if "{name}" in template and template.startswith(("/jobs/", "/clusters/", "/mlflow/models/")) and M != "POST":
                out += [(f"{M} {template} name={n[:20]!r}", M, example(template, n), "", None) for n in NAMES]
            if template.startswith("/runs/"):
                out += [(f"{M} {template} run_id={n[:20]!r}", M, template.replace("{run_id}", n), "", None) for n in NAMES]
            fields, valid = route_fields(template, m)
            for f, (types, required) in fields.items():
                accepted = {PY[t] for t in types}
                for wname, wval in WRONG.items():
                    if wname in accepted or (wname == "int" and "float" in accepted):
                        continue
                    out.append((f"{M} {template} {f}={wname}", M, path, "", json.dumps({**valid, f: wval}).encode()))
                if required:
                    out.append((f"{M} {template} without {f}", M, path, "",
                                json.dumps({k: v for k, v in valid.items() if k != f}).encode()))
    nb = "/notebooks/parameters"
    out += [(f"GET {nb} path={p!r}", "GET", nb, f"path={p}", None)
            for p in ("", "..%2Fx.ipynb", "%2Fetc%2Fpasswd", "%00", "nb.ipynb%2F..%2F..", ".", "nb.ipynb&path=nb.ipynb",
                      "missing.ipynb", "~%2F.bashrc", "%2E%2E")]
    out.append((f"GET {nb} no path", "GET", nb, "", None))
    out += [
        ("POST /clusters options name=x", "POST", "clusters", "", b'{"profile": "local", "options": {"name": "x"}}'),
        ("POST /clusters options profile=x", "POST", "clusters", "", b'{"profile": "local", "options": {"profile": "x"}}'),
        ("POST /clusters options timeout=1", "POST", "clusters", "", b'{"profile": "local", "options": {"timeout": 1}}'),
        ("POST /clusters options many", "POST", "clusters", "", b'{"profile": "local", "options": "many"}'),
        ("POST /clusters profile=evil (class not in the allowlist)", "POST", "clusters", "", b'{"profile": "evil"}'),
        ("POST /clusters options bogus=1 (cluster class rejects unknown options)", "POST", "clusters", "",
         b'{"profile": "local", "options": {"bogus_option": 1}}'),
        ("POST /jobs notebook outside", "POST", "jobs", "", b'{"notebook": "../sibling/keep.txt"}'),
        ("POST /jobs notebook absolute", "POST", "jobs", "", b'{"notebook": "/etc/hosts"}'),
        ("POST /jobs notebook missing", "POST", "jobs", "", b'{"notebook": "missing.ipynb"}'),
        ("POST /jobs name ../x", "POST", "jobs", "", b'{"notebook": "nb.ipynb", "name": "../x"}'),
        ("POST /jobs schedule 61", "POST", "jobs", "", b'{"notebook": "nb.ipynb", "schedule": "61 * * * *"}'),
        ("POST /jobs timezone Mars", "POST", "jobs", "", b'{"notebook": "nb.ipynb", "timezone": "Mars/Olympus"}'),
        ("POST /jobs retries -1", "POST", "jobs", "", b'{"notebook": "nb.ipynb", "retries": -1}'),
        ("POST /jobs parameters unknown", "POST", "jobs", "", b'{"notebook": "nb.ipynb", "parameters": {"nope": 1}}'),
        ("POST /jobs retry_delay=1e308 (finite but absurd retry delay)", "POST", "jobs", "",
         b'{"notebook": "nb.ipynb", "retry_delay": 1e308}'),
        ("POST /jobs schedule 0 0 30 2 * (never fires)", "POST", "jobs", "",
         b'{"notebook": "nb.ipynb", "schedule": "0 0 30 2 *"}'),
        ("POST /jobs on_failure webhook with credentials (redacted in messages)", "POST", "jobs", "",
         json.dumps({"notebook": "nb.ipynb", "on_failure": [{"webhook": f"https://u:{SECRET}@h.invalid/x", "retries": "many"}]}
                    ).encode()),
        ("POST /jobs/real/run parameter type", "POST", f"jobs/{JOB}/run", "", b'{"parameters": {"rows": "many"}}'),
        ("POST /jobs/real/run parameter unknown", "POST", f"jobs/{JOB}/run", "", b'{"parameters": {"nope": 1}}'),
        ("POST /clusters/nope/scale -1", "POST", "clusters/nope/scale", "", b'{"n": -1}'),
        ("POST /clusters/nope/adapt 3>1", "POST", "clusters/nope/adapt", "", b'{"minimum": 3, "maximum": 1}'),
        ("POST /mlflow/models/nope/promote", "POST", "mlflow/models/nope/promote", "", b'{"version": 1, "metric": "auc"}'),
        ("PUT /jobs (no such method)", "PUT", "jobs", "", b"{}"),
        ("PATCH /jobs/real (no such method)", "PATCH", f"jobs/{JOB}", "", b"{}"),
        ("DELETE /jobs (no such method)", "DELETE", "jobs", "", None),
    ]
    return out


CASES = http_cases()


def test_there_are_enough_cases():
    from mlscale_sdk import server
    assert len(CASES) >= 300, len(CASES)
    covered = {(c[1], t) for t, h in server.ROUTES for c in CASES if c[0].startswith(f"{c[1]} {t} ")}
    assert covered >= {(m.upper(), t) for t, h in server.ROUTES for m in server.route_methods(h)}


def check_response(r, label):
    "None when `r` is a 4xx with a message and no secret; else what is wrong."
    try:
        msg = r.json().get("error") or r.json().get("message")
    except (ValueError, AttributeError):
        msg = None
    if not 400 <= r.status_code < 500:
        return f"{label}: answered {r.status_code} {r.text[:300]!r}"
    if not msg:
        return f"{label}: {r.status_code} without a message: {r.text[:100]!r}"
    if SECRET in r.text:
        return f"{label}: the message echoes a credential: {msg[:200]}"
    return None


def test_every_malformed_request_is_a_4xx_and_changes_nothing(srv):
    s, url, project, base = srv["session"], srv["url"], srv["project"], srv["base"]
    store, tree, around = store_dump(project), files(project), files(base, skip=("project",))
    wrong = []
    for label, method, path, query, body in CASES:
        r = s.request(method, f"{url}/{path.lstrip('/')}" + (f"?{query}" if query else ""), data=body,
                      headers={"Content-Type": "application/json"}, timeout=120)
        COUNTS["requests"] += 1
        COUNTS["status"][r.status_code] += 1
        COUNTS["endpoint"][f"{method} {label.split(' ')[1]}"] += 1
        problem = check_response(r, label)
        now = store_dump(project)
        if now != store:
            problem = (problem or label) + f": the store changed ({[t for t in now if now[t] != store.get(t)]})"
            store = now
        now_tree = files(project)
        if now_tree != tree:
            problem = (problem or label) + f": files changed in the project: {sorted(now_tree ^ tree)[:5]}"
            tree = now_tree
        if problem:
            wrong.append(problem)
    assert files(base, skip=("project",)) == around, "a request wrote outside the project"
    assert listening_beyond_loopback(srv["proc"]) == []
    assert srv["proc"].poll() is None, "the server died"
    assert not wrong, f"{len(wrong)} of {len(CASES)} malformed requests were not refused cleanly:\n" + "\n".join(wrong)


# ---------------------------------------------------------------- the CLI

CLI_CASES = [  # (label, args) each refused with exit 1 or 2 and a message
    ("jobs promote missing", ["jobs", "promote", "missing.ipynb"]),
    ("jobs promote outside", ["jobs", "promote", "../sibling/keep.txt"]),
    ("jobs promote schedule 61", ["jobs", "promote", "nb.ipynb", "--name", "c1", "--schedule", "61 * * * *"]),
    ("jobs promote timezone", ["jobs", "promote", "nb.ipynb", "--name", "c2", "--timezone", "Mars/Olympus"]),
    ("jobs promote retries -1", ["jobs", "promote", "nb.ipynb", "--name", "c3", "--retries", "-1"]),
    ("jobs promote retries x", ["jobs", "promote", "nb.ipynb", "--name", "c3", "--retries", "x"]),
    ("jobs promote max-concurrent 0", ["jobs", "promote", "nb.ipynb", "--name", "c4", "--max-concurrent", "0"]),
    ("jobs promote catchup bogus", ["jobs", "promote", "nb.ipynb", "--name", "c5", "--catchup", "bogus"]),
    ("jobs promote tag no equals", ["jobs", "promote", "nb.ipynb", "--name", "c6", "--tag", "noequals"]),
    ("jobs promote param unknown", ["jobs", "promote", "nb.ipynb", "--name", "c7", "-p", "nope=1"]),
    ("jobs promote name ../x", ["jobs", "promote", "nb.ipynb", "--name", "../x"]),
    ("cli jobs promote --retry-delay nan", ["jobs", "promote", "nb.ipynb", "--name", "c8", "--retry-delay", "nan"]),
    ("cli jobs promote --retry-delay inf", ["jobs", "promote", "nb.ipynb", "--name", "c9", "--retry-delay", "inf"]),
    ("cli jobs promote --schedule 0 0 30 2 *", ["jobs", "promote", "nb.ipynb", "--name", "c10", "--schedule", "0 0 30 2 *"]),
    ("jobs run nope", ["jobs", "run", "nope"]),
    ("jobs run param type", ["jobs", "run", JOB, "-p", "rows=many"]),
    ("jobs run param unknown", ["jobs", "run", JOB, "-p", "nope=1"]),
    ("jobs show nope", ["jobs", "show", "nope"]),
    ("jobs pause nope", ["jobs", "pause", "nope"]),
    ("jobs resume nope", ["jobs", "resume", "nope"]),
    ("jobs delete nope", ["jobs", "delete", "nope", "--yes"]),
    ("jobs history nope", ["jobs", "history", "nope"]),
    ("jobs history limit x", ["jobs", "history", JOB, "-n", "x"]),
    ("jobs output nope", ["jobs", "output", "nope"]),
    ("jobs cancel nope", ["jobs", "cancel", "nope"]),
    ("jobs export nope", ["jobs", "export", "nope"]),
    ("jobs export target", ["jobs", "export", JOB, "--target", "bogus"]),
    ("cluster scale nope", ["cluster", "scale", "nope", "2"]),
    ("cluster scale -1", ["cluster", "scale", "nope", "-1"]),
    ("cluster scale x", ["cluster", "scale", "nope", "x"]),
    ("cluster adapt nope", ["cluster", "adapt", "nope", "--minimum", "3", "--maximum", "1"]),
    ("cluster stop nope", ["cluster", "stop", "nope"]),
    ("cluster start no profile", ["cluster", "start", "no-such-profile"]),
    ("cluster start option name", ["cluster", "start", "local", "-o", 'name="x"']),
    ("cluster start option timeout", ["cluster", "start", "local", "-o", "timeout=1"]),
    ("cluster start option no value", ["cluster", "start", "local", "-o", "n_workers"]),
    ("cli cluster start evil", ["cluster", "start", "evil"]),
    ("monitor alerts limit x", ["monitor", "alerts", "-n", "x"]),
    ("monitor metrics label", ["monitor", "metrics", JOB, "m", "-l", "noequals"]),
    ("monitor serve port", ["monitor", "serve", "--port", "99999"]),
    ("monitor serve addr", ["monitor", "serve", "--port", "0", "--addr", "192.0.2.1"]),
    ("monitor drift missing", ["monitor", "drift", "missing.parquet", "missing2.parquet"]),
    ("no such command", ["nope"]),
    ("jobs no such command", ["jobs", "nope"]),
]


def test_every_malformed_cli_command_is_refused_and_changes_nothing(srv, monkeypatch):
    from click.testing import CliRunner
    from mlscale_sdk.cli import main
    project, base = srv["project"], srv["base"]
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLSCALE_DEBUG", raising=False)
    store, tree, around = store_dump(project), files(project), files(base, skip=("project",))
    wrong = []
    for label, args in CLI_CASES:
        r = CliRunner().invoke(main, args)
        COUNTS["cli"][r.exit_code] += 1
        problem = None
        if r.exit_code not in (1, 2) or not isinstance(r.exception, SystemExit):
            problem = f"{label}: exit {r.exit_code}, {type(r.exception).__name__}: {str(r.exception)[:200]} {r.output[-300:]}"
        elif "Error" not in r.output:
            problem = f"{label}: no message: {r.output[-300:]}"
        if store_dump(project) != store:
            problem = (problem or label) + ": the store changed"
            store = store_dump(project)
        if files(project) != tree:
            problem = (problem or label) + f": files changed in the project: {sorted(files(project) ^ tree)[:5]}"
            tree = files(project)
        if problem:
            wrong.append(problem)
    assert files(base, skip=("project",)) == around, "a command wrote outside the project"
    assert not wrong, f"{len(wrong)} of {len(CLI_CASES)} malformed commands were not refused cleanly:\n" + "\n".join(wrong)


def test_monitor_serve_listens_on_loopback_unless_asked(srv):
    "`mlscale monitor serve` binds 127.0.0.1 by default; --addr or MLSCALE_METRICS_ADDR choose another interface."
    env = {**os.environ, "MLSCALE_HOME": str(srv["project"])}
    env.pop("MLSCALE_METRICS_ADDR", None)
    for extra, extra_env, want in [([], {}, "127.0.0.1"), ([], {"MLSCALE_METRICS_ADDR": "127.0.0.2"}, "127.0.0.2"),
                                   (["--addr", "127.0.0.3"], {}, "127.0.0.3")]:
        p = subprocess.Popen([str(BIN / "mlscale"), "monitor", "serve", "--port", "0", *extra], env={**env, **extra_env},
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = p.stdout.readline()
            assert line.startswith(f"serving http://{want}:"), line
            wait_for(lambda: any(c.status == psutil.CONN_LISTEN for c in psutil.Process(p.pid).net_connections("inet")),
                     timeout=20, what="listening")
            addrs = {c.laddr.ip for c in psutil.Process(p.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
            assert addrs == {want}, addrs
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(20)
