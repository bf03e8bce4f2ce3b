"""The GPU verification kit (bench/gpu_check.py) without a GPU: its dry run lists the carried wheels and checks the
carry limit, that every GPU test it would run exists and imports with only the GPU machine's packages, and that the
wheels' requirements are met; each check is shown failing too. The smoke run drives every step on CPU."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "bench" / "gpu_check.py"
sys.path.insert(0, str(KIT.parent))
import gpu_check as G  # noqa: E402


def kit(*args, timeout=300):
    r = subprocess.run([sys.executable, str(KIT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def dry():
    "The plain dry run (with whatever bench/gpu-wheels holds: nothing on a fresh checkout)."
    return kit("--dry-run")


def test_dry_run_passes_and_lists_wheels_tests_and_verdicts(dry):
    rc, out = dry
    assert rc == 0 and out.rstrip().endswith("dry run: OK"), out
    for name, version, _ in G.read_requirements():
        assert f"{name}=={version}" in out
    for pin in ("dask==2026.7.1", "distributed==2026.7.1", "dask-cuda==26.10.0"):
        assert pin in out
    assert "of the 64 MiB carry limit: OK" in out
    for t in G.GPU_TESTS:
        assert f"found   {t}" in out
    assert "MISSING" not in out and "UNLISTED" not in out
    assert "process groups), same packages: imports" in out
    assert "notebook cells flagged `#| gpu`" in out
    assert 'xgboost device="cuda"' in out and "NOT CARRIED" in out and "125.6 MiB" in out


def test_the_pins_match_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    pins = {n: v for n, v, _ in G.read_requirements()}
    for name in ("dask", "distributed", "dask-cuda"):
        assert f'"{name}{"[dataframe]" if name == "dask" else ""}=={pins[name]}"' in text, name


def test_over_the_limit_fails():
    rc, out = kit("--dry-run", "--check-wheels", "--limit-mib", "5")
    assert rc == 1, out
    assert "of the 5 MiB carry limit: OVER THE LIMIT" in out and "dry run: FAILED" in out


def test_a_missing_gpu_test_fails():
    rc, out = kit("--dry-run", "--expect-test", "tests/test_gpu.py::test_no_such_gpu_test")
    assert rc == 1, out
    assert "MISSING tests/test_gpu.py::test_no_such_gpu_test" in out
    assert "GPU test tests/test_gpu.py::test_no_such_gpu_test does not exist" in out


def test_a_package_the_sdk_needs_but_nobody_carries_fails(tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("".join(l + "\n" for l in G.REQUIREMENTS.read_text().splitlines() if not l.startswith("distri")))
    rc, out = kit("--dry-run", "--requirements", str(reqs), "--wheels", str(tmp_path / "none"))
    assert rc == 1, out
    assert "same packages: FAILS: ModuleNotFoundError: No module named 'distributed'" in out
    assert "the SDK code the GPU steps use would not import there" in out


def test_gpu_tests_are_discovered_from_the_mark():
    ids, errors = G.collect_gpu_tests()
    assert errors == [] and set(G.GPU_TESTS) <= ids
    assert "tests/test_gpu_kit.py" not in G.gpu_marked_files()


def fake_wheel(folder: Path, name: str, version: str, requires=()):
    p = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}\n\nbody\nRequires-Dist: not-a-header\n".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return p


def test_downloaded_wheels_are_checked_against_the_list_and_each_other(tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("alpha==1.0   # 0.01 MiB\nbeta==2.0\ngamma==3.0\n")
    wheels = tmp_path / "w"
    wheels.mkdir()
    fake_wheel(
        wheels,
        "alpha",
        "1.0",
        ["beta>=2", "numpy>=1.24", "pandas", 'tomli; python_version < "3.11"', 'pytest; extra == "test"'],
    )
    fake_wheel(wheels, "beta", "2.0", ["no-such-package>=1", "numpy>=3"])
    fake_wheel(wheels, "delta", "4.0")
    rc, out = kit("--dry-run", "--check-wheels", "--wheels", str(wheels), "--requirements", str(reqs))
    assert rc == 1, out
    assert "(3 downloaded)" in out and "gamma==3.0" in out and "MISSING" in out
    assert "gamma==3.0: expected one wheel" in out
    assert "delta-4.0-py3-none-any.whl: in" in out and "but not in reqs.txt" in out
    assert "beta-2.0-py3-none-any.whl needs no-such-package>=1: neither carried nor on the GPU machine" in out
    assert "needs numpy>=3, but numpy 2.5.2 is what there will be" in out
    assert "alpha-1.0" not in "".join(l for l in out.splitlines() if "needs" in l)  # its needs are all met
    (wheels / "delta-4.0-py3-none-any.whl").unlink()
    fake_wheel(wheels, "gamma", "3.0")
    fake_wheel(wheels, "beta", "2.0", ["numpy>=2"])
    rc, out = kit("--dry-run", "--check-wheels", "--wheels", str(wheels), "--requirements", str(reqs))
    assert rc == 0 and "all met by the carried wheels or the GPU machine's packages" in out, out


def test_the_simulated_gpu_machine_lacks_what_it_lacks():
    env = G.sim_env()
    code = (
        "import importlib\nfor m in ('mlflow', 'xgboost', 'feast', 'dask', 'distributed', 'sqlalchemy', "
        "'mlscale_sdk.train'):\n    try: importlib.import_module(m); print(m, 'ok')\n"
        "    except ImportError as e: print(m, 'missing')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    got = dict(l.split() for l in out.splitlines())
    assert got == {
        "mlflow": "missing",
        "xgboost": "missing",
        "feast": "missing",
        "dask": "ok",
        "distributed": "ok",
        "sqlalchemy": "ok",
        "mlscale_sdk.train": "ok",
    }, out


@pytest.mark.slow
@pytest.mark.timeout(1000)  # the kit bounds itself (900 s in smoke); typically a minute
def test_smoke_runs_every_step_on_cpu(tmp_path):
    "Every step of the real run, on CPU with tiny sizes and only the GPU machine's packages (no install)."
    rc, out = kit("--smoke", "--json", str(tmp_path / "r.json"), timeout=960)
    res = json.loads((tmp_path / "r.json").read_text())
    status = {name: s for name, s, _, _ in res["summary"]}
    assert status == {
        "install": "skipped",
        "sdk": "ok",
        "pytest": "skipped",
        "clusters": "skipped",
        "torch": "skipped",
        "nccl": "skipped",
        "xgboost": "not run",
        "notebooks": "skipped",
    }, out
    assert rc == 0 and "gpu check: OK" in out, out
    assert res["results"]["torch"]["cpu"]["backend"] == "gloo" and res["results"]["torch"]["cpu"]["world_size"] == 2
    assert res["results"]["nccl"]["gloox2"]["status"] == "ok"
    assert "4 skipped" in res["results"]["pytest"]["outcome"]  # the xgboost one is not even started there
    assert "not run: tests/test_train.py::test_gpu_training_uses_cuda (xgboost is not installed here)" in out
    assert "start_cluster('auto') [local] / raw LocalCluster start" in res["ratios"][0]
