"""Shared fixtures: every test runs in its own throw-away mlscale project."""
import os, socket, sys, subprocess, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    "A fresh mlscale project (MLSCALE_HOME) with its own state directory."
    from mlscale_sdk.config import settings
    monkeypatch.setenv("MLSCALE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    from mlscale_sdk import tracking
    settings.cache_clear(); tracking.reset_cache()
    yield tmp_path
    settings.cache_clear(); tracking.reset_cache()


def bare_version(name, **metrics):
    "A registered version of `name` whose source run has `metrics` (no model files: fast)."
    from mlflow.exceptions import MlflowException
    from mlscale_sdk import tracking
    c = tracking.client()
    try: c.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS": raise
    with tracking.start_run("cand") as run:
        run.log_metrics(metrics)
    return str(c.create_model_version(name, source=f"runs:/{run.run_id}/model", run_id=run.run_id).version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=30, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def mlscale(*args, env=None, check=True, timeout=180):
    "Run the real `mlscale` console script in a subprocess."
    r = subprocess.run([str(BIN / "mlscale"), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"mlscale {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def pytest_configure(config):
    config.addinivalue_line("markers", "deny_all: the Jupyter server fixture runs with an Authorizer that denies everything")
    config.addinivalue_line("markers", "named_user: the Jupyter server fixture authenticates its token as the user 'ada'")


def pytest_terminal_summary(terminalreporter, config):
    "The bad-input suite's counts (requests per status and endpoint), also in the summary without -s."
    lines = getattr(config, "_mlscale_bad_input_summary", None)
    if lines:
        terminalreporter.write_sep("-", "bad-input counts")
        for line in lines:
            terminalreporter.write_line(line)
