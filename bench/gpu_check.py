"""GPU verification kit: every GPU path of mlscale, checked in one bounded command on a bare GPU machine.

The GPU machine (one H200, Python 3.12 with torch 2.11+cu130, CuPy, numba, nvidia-ml-py, pandas, pyarrow) reaches
no registry and lacks dask, distributed, dask-cuda, xgboost and mlflow. `make gpu-wheels` (on a machine with a
registry) downloads exactly the wheels listed in bench/gpu-requirements.txt into the git-ignored bench/gpu-wheels/
and fails if they and the working tree pass the 64 MiB that may travel. There, one command

    bash bench/gpu_check.sh          # = python3 bench/gpu_check.py, unbuffered, log (and JSON) into $OUT if set

installs those wheels (pip --no-index --find-links), puts the working tree's mlscale_sdk on the path without its
dependencies (torch stays 2.11 there; pyproject pins 2.13 here), then runs, each step in its own process group with
a timeout inside one overall budget (default 450 s), a failing step saying why and the kit going on:

  sdk        imports the SDK with that torch, GPU detection, what `start_cluster("auto")` would pick
  pytest     the GPU-marked tests (GPU_TESTS below; the xgboost one only where xgboost is installed)
  clusters   LocalCUDACluster start vs LocalCluster, and the SDK's start_cluster("auto") vs the raw class
  torch      train_torch on the GPU worker vs the same on CPU workers (training samples/s)
  nccl       process groups as train_torch builds them: NCCL with 1 rank, NCCL with 2 ranks on the one GPU, gloo
  xgboost    device="cuda" vs "cpu" where xgboost is installed; otherwise why it is not carried and what would be
  notebooks  the notebook cells flagged `#| gpu` (nbdev-test --flags gpu), where there are any

and prints a summary with the ratios. Anywhere (no GPU needed):

    python bench/gpu_check.py --dry-run     # wheels and sizes, the limit, every GPU test exists and imports with
                                            # only the GPU machine's packages + the carried wheels; exit 1 on a problem
    python bench/gpu_check.py --smoke       # the whole kit on CPU with tiny sizes under that package set (no install)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "bench" / "gpu-requirements.txt"
WHEELS = ROOT / "bench" / "gpu-wheels"
LIMIT_MIB = 64.0  # what may travel to the GPU machine in one call: the working tree plus the carried wheels
BUDGET_S = 450  # the whole kit, install included (a device command may run 10 minutes; keep room to rerun)

# The GPU tests the kit runs there; --dry-run fails when one is missing or a gpu-marked test is not listed here.
GPU_TESTS = [
    "tests/test_clusters.py::test_local_gpu_cluster_on_a_gpu_machine",
    "tests/test_torch.py::test_gpu_ddp_uses_nccl",
    "tests/test_train.py::test_gpu_training_uses_cuda",
    "tests/test_gpu.py::test_local_gpu_rmm_pool",
    "tests/test_gpu.py::test_nccl_process_group_with_this_torch",
]
NEEDS_XGBOOST = {"tests/test_train.py::test_gpu_training_uses_cuda"}
XGBOOST_WHEEL = ("xgboost-3.2.0-py3-none-manylinux_2_28_x86_64.whl", 125.6)  # size on PyPI, MiB
XGBOOST_CPU_WHEEL = ("xgboost_cpu-3.2.0-py3-none-manylinux_2_28_x86_64.whl", 5.3)

# The GPU machine's Python packages (the device notes' list, read there on 2026-11-17) and the few versions known.
GPU_MACHINE_HAS = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub
humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping
jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx
onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint
packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil
pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov
pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
)
GPU_MACHINE_VERSIONS = {"numpy": "2.5.2", "torch": "2.11.0", "cupy-cuda13x": "14.2.0"}
GPU_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_version": "",
    "implementation_version": "3.12.3",
    "extra": "",
}

STEPS = {
    "install": 120,
    "sdk": 60,
    "pytest": 240,
    "clusters": 75,
    "torch": 150,
    "nccl": 75,
    "xgboost": 90,
    "notebooks": 90,
}  # step -> its own timeout in seconds (each also stops at the overall budget)

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# ----------------------------------------------------------------------------------------- wheels and the limit


def read_requirements(path=REQUIREMENTS) -> list[tuple[str, str, float | None]]:
    "(name, pinned version, recorded MiB) of each line `name==version  # N MiB`."
    out = []
    for line in Path(path).read_text().splitlines():
        spec, _, comment = line.partition("#")
        if not spec.strip():
            continue
        m = re.fullmatch(r"\s*([A-Za-z0-9._-]+)==([^\s;]+)\s*", spec)
        if not m:
            raise SystemExit(f"{path}: every requirement must be pinned as name==version: {line!r}")
        size = re.search(r"([\d.]+)\s*MiB", comment)
        out.append((norm(m[1]), m[2], float(size[1]) if size else None))
    return out


def wheel_name_version(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return norm(name), version


def wheel_requires(path: Path) -> list[str]:
    "The Requires-Dist lines of a wheel's METADATA."
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = z.read(meta).decode("utf-8", "replace").split("\n\n", 1)[0]
    return [l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("Requires-Dist:")]


def tree_mib(root=ROOT) -> float | None:
    "Size of what travels besides carried paths: tracked and untracked-not-ignored files (None without git)."
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0
    for rel in out.decode().split("\0"):
        p = root / rel
        if rel and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return mib(total)


def unmet_requirements(wheels: list[Path]) -> list[str]:
    "Requirements of the wheels that neither another carried wheel nor the GPU machine meets."
    have = dict(wheel_name_version(w) for w in wheels)
    problems = []
    for w in wheels:
        for line in wheel_requires(w):
            r = Requirement(line)
            if r.marker is not None and ("extra" in str(r.marker) or not r.marker.evaluate(GPU_MARKERS)):
                continue
            name = norm(r.name)
            version = have.get(name) or GPU_MACHINE_VERSIONS.get(name)
            if name not in have and name not in GPU_MACHINE_HAS:
                problems.append(f"{w.name} needs {line}: neither carried nor on the GPU machine")
            elif version and not r.specifier.contains(Version(version), prereleases=True):
                problems.append(f"{w.name} needs {line}, but {name} {version} is what there will be")
    return problems


def check_wheels(folder: Path, reqs_path: Path, limit: float, problems: list) -> float:
    "Print the wheels with their sizes and the carry total; add what is wrong to `problems`; return the total MiB."
    reqs = read_requirements(reqs_path)
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    by_name = {}
    for w in found:
        by_name.setdefault(wheel_name_version(w)[0], []).append(w)
    rel = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    if found:
        print(f"wheels in {rel}/ ({len(found)} downloaded):")
    else:
        print(f"wheels: NOT DOWNLOADED (no {rel}/*.whl; run `make gpu-wheels`): sizes as recorded in {reqs_path.name}")
    total = 0.0
    for name, version, recorded in reqs:
        got = by_name.pop(name, [])
        if found:
            hit = [w for w in got if wheel_name_version(w)[1] == version]
            if len(got) != 1 or not hit:
                problems.append(f"{name}=={version}: expected one wheel in {rel}/, found {[w.name for w in got]}")
            size = sum(mib(w.stat().st_size) for w in got)
            what = ", ".join(w.name for w in got) or "MISSING"
        else:
            size, what = recorded or 0.0, "not downloaded" + ("" if recorded is not None else ", size not recorded")
        total += size
        print(f"  {name + '==' + version:34s} {size:7.2f} MiB  {what}")
    for extra in by_name.values():
        problems.append(f"{', '.join(w.name for w in extra)}: in {rel}/ but not in {reqs_path.name}")
        total += sum(mib(w.stat().st_size) for w in extra)
    tree = tree_mib()
    carry = total + (tree or 0.0)
    verdict = "OK" if carry <= limit else "OVER THE LIMIT"
    print(
        f"  total: wheels {total:.2f} MiB + working tree {'unknown (no git)' if tree is None else f'{tree:.2f} MiB'}"
        f" = {carry:.2f} MiB of the {limit:g} MiB carry limit: {verdict}"
    )
    if carry > limit:
        problems.append(f"the carry ({carry:.2f} MiB) is over the {limit:g} MiB limit")
    if found:
        unmet = unmet_requirements(found)
        problems.extend(unmet)
        print(
            "  requirements of these wheels: "
            + ("all met by the carried wheels or the GPU machine's packages" if not unmet else f"{len(unmet)} UNMET")
        )
    else:
        print("  requirements of these wheels: not checked (not downloaded)")
    return carry


# ----------------------------------------------------------------------------- the GPU tests and their imports

# sitecustomize for --dry-run's collection and --smoke: a top-level import of a package that neither the GPU
# machine (with what its packages require) nor the carried wheels provide fails, in every child process too.
SIM_SITECUSTOMIZE = r'''
import os, re, sys
def _mlscale_gpu_sim():
    from importlib.metadata import packages_distributions
    allow = set(os.environ.get("MLSCALE_GPU_SIM_ALLOW", "").split(","))
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
    blocked = {m for m, ds in packages_distributions().items()
               if m not in sys.stdlib_module_names and not any(norm(d) in allow for d in ds)}
    class Block:
        def find_spec(self, name, path=None, target=None):
            if path is None and name in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine: simulated by "
                                          "bench/gpu_check.py)", name=name)
    sys.meta_path.insert(0, Block())
_mlscale_gpu_sim()
'''


def gpu_machine_closure() -> set[str]:
    "The GPU machine's packages plus what those (as installed here) require: pip installed those there too."
    from importlib.metadata import distributions

    reqs = {}
    for d in distributions():
        reqs.setdefault(norm(d.metadata["Name"] or ""), d.requires or [])
    seen, todo = set(), list(GPU_MACHINE_HAS)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for line in reqs.get(n, []):
            try:
                r = Requirement(line)
            except Exception:
                continue
            if r.marker is None or ("extra" not in str(r.marker) and r.marker.evaluate(GPU_MARKERS)):
                todo.append(norm(r.name))
    return seen


def _requires(name: str, here_only: bool) -> set[str]:
    "What an installed package requires on this Python (`here_only`: and not on the GPU machine's); no extras."
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        lines = distribution(name).requires or []
    except PackageNotFoundError:
        return set()
    out = set()
    for line in lines:
        r = Requirement(line)
        if r.marker is not None and "extra" in str(r.marker):
            continue
        if here_only and not (r.marker is not None and r.marker.evaluate() and not r.marker.evaluate(GPU_MARKERS)):
            continue
        if r.marker is None or r.marker.evaluate():
            out.add(norm(r.name))
    return out


def backports(names: set[str]) -> set[str]:
    "What these installed packages require only on this Python (importlib_metadata...), with what those require."
    out = set().union(*(_requires(n, True) for n in names)) if names else set()
    todo = list(out)
    while todo:  # a backport's own requirements come with it (importlib_metadata 10.2 needs lazy-importer)
        for r in _requires(todo.pop(), False) - out:
            out.add(r)
            todo.append(r)
    return out


def sim_env(reqs_path=REQUIREMENTS) -> dict:
    "Environment whose Python processes see only the GPU machine's packages and the carried ones."
    d = Path(tempfile.mkdtemp(prefix="gpu-sim-"))
    (d / "sitecustomize.py").write_text(SIM_SITECUSTOMIZE)
    carried = {n for n, _, _ in read_requirements(reqs_path)}
    allow = gpu_machine_closure() | carried | {"mlscale-sdk"}
    allow |= backports(allow)
    env = dict(os.environ, MLSCALE_GPU_SIM_ALLOW=",".join(sorted(allow)))
    env["PYTHONPATH"] = os.pathsep.join([str(d), *filter(None, [env.get("PYTHONPATH")])])
    return env


def gpu_marked_files() -> list[str]:
    "Test files that mention the gpu mark (the collection then says which of their tests carry it)."
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if re.search(r"mark\.gpu\b", p.read_text(errors="replace"))
    )


def collect_gpu_tests(env=None) -> tuple[set[str], list[str]]:
    "(gpu-marked node ids, error lines) from `pytest -m gpu --collect-only` over the files that use the mark."
    files = sorted(
        set(gpu_marked_files()) | {t.split("::")[0] for t in GPU_TESTS if (ROOT / t.split("::")[0]).exists()}
    )
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", *files]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    ids = {l.strip() for l in r.stdout.splitlines() if "::" in l and not l.startswith(("ERROR", "FAILED"))}
    errors = (
        []
        if r.returncode in (0, 5)
        else [l for l in (r.stdout + r.stderr).splitlines() if re.search(r"Error|ERROR|error", l)][-12:]
        or [r.stdout[-2000:]]
    )
    return ids, errors


def sdk_import_problem(env) -> str | None:
    "None if the SDK code the kit's steps run imports in `env`, else the last line of the error."
    code = (
        "import sys; sys.path.insert(0, 'bench'); import gpu_check\n"
        "import dask.dataframe, distributed\n"
        "from mlscale_sdk import clusters, data, train\n"
        "train.train_torch, train.mlp, clusters.start_cluster, data.make_transactions, data.persist\n"
        "gpu_check.sdk_process_group()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1][:300]


def gpu_notebook_cells() -> list[str]:
    "`nbs/NAME.ipynb#cell N` for each code cell flagged `#| gpu`."
    out = []
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(nb.read_text()).get("cells", [])
        for i, c in enumerate(cells):
            src = "".join(c.get("source", [])) if c.get("cell_type") == "code" else ""
            if re.search(r"^\s*#\|\s*gpu\b", src, re.M):
                out.append(f"{nb.relative_to(ROOT)}#cell {i}")
    return out


def xgboost_verdict(limit: float) -> str:
    name, size = XGBOOST_WHEEL
    return (
        f"xgboost device=\"cuda\" vs \"cpu\": NOT CARRIED: {name} is {size} MiB, over the {limit:g} MiB carry "
        f"limit before the working tree and the other wheels (its CUDA build of libxgboost is most of it; "
        f"{XGBOOST_CPU_WHEEL[0]}, {XGBOOST_CPU_WHEEL[1]} MiB, fits but has no CUDA). Needed: xgboost in the GPU "
        f"machine's image, or a carry of about {size + 25:.0f} MiB in one call, or the wheel split in "
        f"{int(size // (limit - 4)) + 1} parts carried by consecutive calls to a warm machine and joined there "
        "(install it --no-deps: its nvidia-nccl-cu12 requirement matters only for several GPUs). "
        f"Then tests/test_train.py::test_gpu_training_uses_cuda and this comparison run by themselves."
    )


def dry_run(args) -> int:
    "List and check everything the kit needs without a GPU, installing and starting nothing. 0: all good."
    problems: list[str] = []
    print("== GPU verification kit: dry run (nothing is installed or started)")
    check_wheels(Path(args.wheels), Path(args.requirements), args.limit_mib, problems)
    if args.check_wheels:
        return report_problems(problems)
    listed = list(dict.fromkeys(GPU_TESTS + list(args.expect_test)))
    env = sim_env(Path(args.requirements))
    ids, errors = collect_gpu_tests(env=env)
    print(
        f"GPU tests (pytest -m gpu, collected with only the GPU machine's packages and the carried wheels): "
        f"{len(ids)} collected"
    )
    for t in listed:
        note = "  (needs xgboost: run there only where it is installed)" if t in NEEDS_XGBOOST else ""
        print(f"  {'found  ' if t in ids else 'MISSING'} {t}{note}")
        if t not in ids:
            problems.append(f"GPU test {t} does not exist (or does not carry the gpu mark)")
    for t in sorted(ids - set(listed)):
        print(f"  UNLISTED {t}")
        problems.append(f"gpu-marked test {t} is not in GPU_TESTS of bench/gpu_check.py: the kit would not run it")
    for e in errors:
        problems.append(f"collecting the GPU tests there would fail: {e.strip()}")
    sdk = sdk_import_problem(env)
    print(
        "SDK code the GPU steps use (dask, clusters, data, train_torch, its process groups), same packages: "
        + ("imports" if sdk is None else f"FAILS: {sdk}")
    )
    if sdk is not None:
        problems.append(f"the SDK code the GPU steps use would not import there: {sdk}")
    cells = gpu_notebook_cells()
    print(
        "notebook cells flagged `#| gpu` (nbdev-test --flags gpu): "
        + (", ".join(cells) if cells else "none in nbs/*.ipynb, nothing to run there")
    )
    if cells and "nbdev" not in {n for n, _, _ in read_requirements(Path(args.requirements))}:
        problems.append("notebook cells are flagged gpu but nbdev (and what it needs) is not carried")
    print(xgboost_verdict(args.limit_mib))
    print(f"steps there, within {args.budget:g} s in all: " + ", ".join(f"{k} ({v} s)" for k, v in STEPS.items()))
    return report_problems(problems)


def report_problems(problems: list[str]) -> int:
    if not problems:
        print("dry run: OK")
        return 0
    print(f"dry run: FAILED, {len(problems)} problem(s):")
    for p in problems:
        print(f"  - {p}")
    return 1


# ------------------------------------------------------------------------------------------- the run, there


def run_cmd(cmd: list, timeout: float, env=None, echo=True) -> tuple[int | None, list[str], float]:
    "Run `cmd` in its own process group, echoing its output; kill the group at `timeout`. rc None: timed out."
    t0 = time.monotonic()
    p = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    lines: list[str] = []

    def pump():
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if echo and not line.startswith("RESULT "):
                print("    " + line.rstrip("\n"), flush=True)

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    try:
        rc = p.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        rc = None
    try:
        os.killpg(p.pid, signal.SIGKILL)  # also what it left behind (Dask workers, ranks)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()
    th.join(5)
    return rc, lines, time.monotonic() - t0


class Kit:
    "The steps of one run, each bounded by its own timeout and by what is left of the overall budget."

    def __init__(self, args):
        self.args, self.t0 = args, time.monotonic()
        self.summary: list[tuple[str, str, float, str]] = []
        self.ratios: list[str] = []
        self.results: dict = {}
        self.env = sim_env(Path(args.requirements)) if args.smoke else dict(os.environ)
        self.env["PYTHONUNBUFFERED"] = "1"

    def importable(self, module: str) -> bool:
        "Whether the steps' processes can import `module` (in --smoke, under the GPU machine's package set)."
        r = subprocess.run([sys.executable, "-c", f"import {module}"], env=self.env, capture_output=True, timeout=60)
        return r.returncode == 0

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.t0)

    def step(self, name: str, fn) -> None:
        limit = min(STEPS[name] * (2 if self.args.smoke else 1), self.left() - 5)  # smoke: a loaded 2-core box
        print(f"\n== {name} (at most {max(limit, 0):.0f} s; {self.left():.0f} s of the budget left)", flush=True)
        t = time.monotonic()
        if name in self.args.skip:
            status, note = "skipped", "--skip"
        elif limit < 10:
            status, note = "skipped", "out of time budget"
        else:
            try:
                status, note = fn(limit)
            except Exception as e:
                status, note = "failed", f"{type(e).__name__}: {e}"
        dt = time.monotonic() - t
        print(f"-- {name}: {status.upper()} in {dt:.1f} s: {note}", flush=True)
        self.summary.append((name, status, dt, note))

    def child(self, step: str, limit: float) -> tuple[str, str, dict | None]:
        "Run `--step STEP` of this file in a child process; (status, note, its RESULT dict)."
        a = self.args
        sizes = [
            "--rows",
            a.rows,
            "--epochs",
            a.epochs,
            "--batch",
            a.batch,
            "--repeats",
            a.repeats,
            "--cpu-workers",
            a.cpu_workers,
            "--hidden",
            *a.hidden,
        ]
        dump = ["--stacks-after", f"{max(1.0, limit - 4):.0f}"]  # where it hangs, if it does
        rc, lines, _ = run_cmd([sys.executable, __file__, "--step", step, *sizes, *dump], limit, env=self.env)
        res = next((json.loads(l[7:]) for l in reversed(lines) if l.startswith("RESULT ")), None)
        if res is not None:
            self.results[step] = res
        if rc is None:
            return "timeout", f"killed after {limit:.0f} s", res
        if rc != 0 or res is None:
            last = next((l for l in reversed(lines) if l.strip()), "no output")
            return "failed", f"exit {rc}: {last.strip()[:300]}", res
        self.ratios += res.get("ratios", [])
        return res.get("status", "ok"), res.get("note", ""), res

    def finish(self) -> int:
        total = time.monotonic() - self.t0
        print(f"\n== summary ({total:.0f} s of the {self.args.budget:g} s budget)")
        for name, status, dt, note in self.summary:
            print(f"  {name:10s} {status.upper():8s} {dt:6.1f} s  {note[:200]}")
        print("ratios:" if self.ratios else "ratios: none measured")
        for r in self.ratios:
            print(f"  {r}")
        bad = [n for n, s, _, _ in self.summary if s in ("failed", "timeout")]
        print(f"gpu check: {'OK' if not bad else 'FAILED: ' + ', '.join(bad)}")
        if self.args.json:
            Path(self.args.json).write_text(
                json.dumps(
                    {"summary": self.summary, "ratios": self.ratios, "results": self.results, "seconds": total},
                    indent=1,
                )
            )
        return 1 if bad else 0


def step_install(kit: Kit, limit: float) -> tuple[str, str]:
    "pip install the carried wheels (resolving, else --no-deps), then the working tree's mlscale_sdk without deps."
    if kit.args.smoke:
        return "skipped", "smoke: this interpreter's packages, restricted to the GPU machine's set"
    folder, reqs = Path(kit.args.wheels), Path(kit.args.requirements)
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        return "failed", f"no wheels in {folder}: run `make gpu-wheels` and carry that folder"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        folder,
        "--no-cache-dir",
        "--disable-pip-version-check",
        "-q",
    ]
    rc, _, _ = run_cmd([*pip, "-r", reqs], limit * 0.6, env=kit.env)
    how = f"{len(wheels)} wheels, resolved against the machine's packages"
    if rc != 0:
        print("    the resolving install failed (above); installing every carried wheel with --no-deps instead")
        rc, _, _ = run_cmd([*pip, "--no-deps", *wheels], max(10.0, limit * 0.3), env=kit.env)
        run_cmd([sys.executable, "-m", "pip", "check"], 30, env=kit.env)
        how = f"{len(wheels)} wheels with --no-deps (pip check above)"
        if rc != 0:
            return "failed", "pip could not install the carried wheels"
    # the build backend (hatchling, jupyterlab) is not there: a .pth file is `pip install --no-deps -e .`'s effect
    pth = Path(sysconfig.get_paths()["purelib"]) / "mlscale_worktree.pth"
    try:
        pth.write_text(str(ROOT) + "\n")
        how += f"; mlscale_sdk from {ROOT} via {pth}"
    except OSError:
        kit.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [kit.env.get("PYTHONPATH")])])
        how += f"; mlscale_sdk from {ROOT} via PYTHONPATH"
    return "ok", how


def step_pytest(kit: Kit, limit: float) -> tuple[str, str]:
    has_xgb = kit.importable("xgboost")
    tests = [t for t in GPU_TESTS if has_xgb or t not in NEEDS_XGBOOST]
    for t in sorted(set(GPU_TESTS) - set(tests)):
        print(f"    not run: {t} (xgboost is not installed here)")
    per_test = ["--timeout", str(int(min(180, limit)))] if kit.importable("pytest_timeout") else []
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-v", "-rs", "-p", "no:cacheprovider", *per_test, *tests]
    rc, lines, _ = run_cmd(cmd, limit, env=kit.env)
    tail = next((l.strip("= ") for l in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", l)), "")
    kit.results["pytest"] = {"rc": rc, "tests": tests, "outcome": tail}
    if rc is None:
        return "timeout", f"killed after {limit:.0f} s"
    if rc != 0:
        why = next((l.strip() for l in reversed(lines) if re.search(r"error", l, re.I)), "")
        return "failed", tail or f"pytest exit {rc}: {why[:200]}"
    return ("ok" if "passed" in tail else "skipped"), tail


def step_notebooks(kit: Kit, limit: float) -> tuple[str, str]:
    cells = gpu_notebook_cells()
    if not cells:
        return "skipped", "no notebook cell is flagged `#| gpu` in nbs/*.ipynb"
    nbdev_test = Path(sys.executable).parent / "nbdev-test"
    if not nbdev_test.exists():
        return "failed", f"{len(cells)} gpu cells but nbdev is not installed"
    failed, deadline = [], time.monotonic() + limit
    for nb in sorted({c.split("#")[0] for c in cells}):
        rc, _, _ = run_cmd(
            [nbdev_test, "--flags", "gpu", "--n-workers", "1", nb], deadline - time.monotonic(), env=kit.env
        )
        if rc != 0:
            failed.append(nb)
    return ("failed", f"failed: {', '.join(failed)}") if failed else ("ok", f"{len(cells)} gpu cells ran")


def step_xgboost(kit: Kit, limit: float) -> tuple[str, str]:
    if not kit.importable("xgboost"):
        print("    " + xgboost_verdict(kit.args.limit_mib))
        return "not run", f"xgboost is not installed here and its wheel ({XGBOOST_WHEEL[1]} MiB) is not carried"
    return kit.child("xgboost", limit)[:2]


def run_kit(args) -> int:
    kit = Kit(args)
    print(
        f"== GPU verification kit{' (smoke: CPU, tiny sizes, GPU-machine package set)' if args.smoke else ''}: "
        f"{sys.executable} (Python {sys.version.split()[0]}), budget {args.budget:g} s",
        flush=True,
    )
    try:
        run_cmd(["nvidia-smi", "-L"], 15)
    except OSError as e:
        print(f"    nvidia-smi: {e}")
    kit.step("install", lambda lim: step_install(kit, lim))
    kit.step("sdk", lambda lim: kit.child("sdk", lim)[:2])
    kit.step("pytest", lambda lim: step_pytest(kit, lim))
    for name in ("clusters", "torch", "nccl"):
        kit.step(name, lambda lim, name=name: kit.child(name, lim)[:2])
    kit.step("xgboost", lambda lim: step_xgboost(kit, lim))
    kit.step("notebooks", lambda lim: step_notebooks(kit, lim))
    return kit.finish()


# ------------------------------------------------------------------- the steps that run in a child process


def child_sdk(a) -> dict:
    "The SDK imports with this torch; GPU detection; what start_cluster('auto') picks; a matrix product on the GPU."
    import importlib

    import torch

    import mlscale_sdk
    from mlscale_sdk import clusters as C, data as _D, train as _T  # noqa: F401 (imports with this torch)

    _T.train_torch, _T.mlp  # noqa: B018 (loads the torch training code where `train` loads it lazily)

    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}; pyproject pins 2.13.0), "
        f"mlscale_sdk from {Path(mlscale_sdk.__file__).parent}"
    )
    info = {"torch": torch.__version__, "mlscale_sdk": mlscale_sdk.__file__}
    for m in ("dask", "distributed", "dask_cuda", "rmm", "sqlalchemy", "xgboost", "mlflow"):
        try:
            v = importlib.import_module(m).__version__
        except Exception as e:
            v = f"not importable ({type(e).__name__}: {str(e)[:100]})"
        print(f"  {m}: {v}")
        info[m] = v
    g = C.gpu_info()
    auto, why = C.choose_profile("auto")
    print(f"gpu_info: {g.reason}\nstart_cluster('auto') would use {auto!r}: {why}")
    info.update(gpus=g.count, auto=auto)
    if torch.cuda.is_available():
        x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        (x @ x).sum().item()
        t = time.perf_counter()
        [x @ x for _ in range(10)]
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        info.update(device=torch.cuda.get_device_name(0), bf16_tflops=10 * 2 * 8192**3 / dt / 1e12)
        print(f"{info['device']}: bf16 8192^3 matrix product at {info['bf16_tflops']:.0f} TFLOP/s")
    bad = torch.cuda.is_available() and auto != "local-gpu"
    note = f"torch {torch.__version__}, {g.count} GPU(s), auto -> {auto}"
    return {"status": "failed" if bad else "ok", "note": note + (f" ({why})" if bad else ""), **info}


def _cluster_start_s(make, n: int) -> float:
    "Seconds from constructing a cluster to a connected client seeing `n` workers (then it is closed)."
    import distributed

    t = time.perf_counter()
    c = make()
    with distributed.Client(c) as client:
        client.wait_for_workers(n, timeout=60)
        dt = time.perf_counter() - t
    c.close()
    return dt


def child_clusters(a) -> dict:
    "LocalCUDACluster start vs LocalCluster (one worker each per GPU), and the SDK's start_cluster('auto')."
    import logging

    import distributed

    from mlscale_sdk.clusters import gpu_info, start_cluster

    n_gpu = gpu_info().count
    quiet = dict(dashboard_address=":0", silence_logs=logging.ERROR)
    kinds = {"LocalCluster": lambda: distributed.LocalCluster(n_workers=max(1, n_gpu), threads_per_worker=1, **quiet)}
    if n_gpu:
        import dask_cuda

        kinds["LocalCUDACluster"] = lambda: dask_cuda.LocalCUDACluster(threads_per_worker=1, **quiet)
    sdk = "start_cluster('auto')"
    times: dict[str, list] = {k: [] for k in [*kinds, sdk]}
    for _ in range(a.repeats):  # interleaved
        for k, make in kinds.items():
            times[k].append(_cluster_start_s(make, max(1, n_gpu)))
        t = time.perf_counter()
        with start_cluster("auto", register=False, set_as_default=False) as h:
            h.wait_for_workers(max(1, n_gpu))
            times[sdk].append(time.perf_counter() - t)
            picked = h.profile.name
    best = {k: min(v) for k, v in times.items()}
    for k, v in best.items():
        print(f"  {k:24s} {v:6.2f} s (best of {a.repeats})")
    raw = "LocalCUDACluster" if n_gpu else "LocalCluster"
    ratios = [f"{sdk} [{picked}] / raw {raw} start = {best[sdk] / best[raw]:.2f}"]
    if n_gpu:
        ratios.insert(
            0,
            f"LocalCUDACluster / LocalCluster start = {best['LocalCUDACluster'] / best['LocalCluster']:.2f} "
            f"({best['LocalCUDACluster']:.2f} s vs {best['LocalCluster']:.2f} s, {n_gpu} worker(s))",
        )
    return {
        "status": "ok" if n_gpu else "skipped",
        "note": "; ".join(ratios) + ("" if n_gpu else " (no GPU)"),
        "ratios": ratios,
        "seconds": best,
        "auto": picked,
    }


def _train_rate(a, profile: str, **opts) -> dict:
    "train_torch on a fresh cluster of `profile`: median training samples/s over the epochs after the first."
    from mlscale_sdk.clusters import start_cluster
    from mlscale_sdk.data import basic_features, make_transactions, persist
    from mlscale_sdk.train import mlp, train_torch

    hidden = tuple(a.hidden)
    with start_cluster(profile, register=False, set_as_default=False, **opts) as h:
        n = len(h.wait_for_workers(opts.get("n_workers", 1)).workers())
        frame, cols = basic_features(make_transactions(a.rows, seed=0, npartitions=max(2, 2 * n)))
        frame = persist(frame.fillna({"cust_amount_std": 0.0}), h)
        r = train_torch(
            h,
            lambda k: mlp(k, hidden=hidden),
            frame,
            features=cols,
            epochs=a.epochs,
            batch_size=a.batch - a.batch % n,
            eval_fraction=0.0,
            track=False,
            progress=False,
        )
    rates = [e["samples_per_s"] for e in r.history]
    rate = statistics.median(rates[1:] or rates)
    out = {
        "samples_per_s": rate,
        "backend": r.backend,
        "world_size": r.world_size,
        "wall_s": r.seconds,
        "epochs": rates,
        "train_loss": [e["train_loss"] for e in r.history],
    }
    print(
        f"  {profile:9s} {n} worker(s), backend {r.backend}: {rate:12,.0f} samples/s "
        f"(epochs: {', '.join(f'{x:,.0f}' for x in rates)}), call {r.seconds:.1f} s"
    )
    return out


def child_torch(a) -> dict:
    "train_torch on the GPU worker (local-gpu) vs on CPU workers (local), same data, network, batch and epochs."
    from mlscale_sdk.clusters import gpu_info

    cpus = os.cpu_count() or 1
    workers = a.cpu_workers or max(1, min(4, cpus // 4))
    print(f"{a.rows:,} rows, network {tuple(a.hidden)}, global batch {a.batch}, {a.epochs} epochs; {cpus} CPUs")
    out = {}
    if gpu_info().count:
        out["gpu"] = _train_rate(a, "local-gpu")
    out["cpu"] = _train_rate(a, "local", n_workers=workers, threads_per_worker=max(1, cpus // workers))
    if "gpu" not in out:
        return {"status": "skipped", "note": f"no GPU; CPU: {out['cpu']['samples_per_s']:,.0f} samples/s", **out}
    g, c = out["gpu"], out["cpu"]
    ratio = (
        f"train_torch samples/s, 1 GPU worker ({g['backend']}) / {c['world_size']} CPU workers ({c['backend']}) "
        f"= {g['samples_per_s'] / c['samples_per_s']:.2f} ({g['samples_per_s']:,.0f} vs {c['samples_per_s']:,.0f})"
    )
    ok = g["backend"] == "nccl" and g["train_loss"][-1] < g["train_loss"][0]
    return {
        "status": "ok" if ok else "failed",
        "note": ratio if ok else f"GPU run did not train on nccl: {g}",
        "ratios": [ratio],
        **out,
    }


def sdk_process_group():
    "train_torch's process-group builder, wherever the SDK keeps it (its torch training module, or `train`)."
    import importlib

    for name in ("mlscale_sdk.train.torch", "mlscale_sdk.train"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in (name, "mlscale_sdk.train.torch"):
                raise  # a missing dependency, not a missing module
            continue
        if hasattr(mod, "_process_group"):
            return mod._process_group
    raise ImportError("no _process_group in mlscale_sdk.train or mlscale_sdk.train.torch")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, backend: str, n_mib: int, q) -> None:
    "One rank: a process group as train_torch builds it, then allreduces of an n_mib float32 tensor."
    try:
        import torch

        _process_group = sdk_process_group()
        dev = torch.device("cuda", 0) if backend == "nccl" else torch.device("cpu")
        if backend == "nccl":
            torch.cuda.set_device(0)
        pg = _process_group("127.0.0.1", port, rank, world, "gpu-kit", backend, 30)
        t = torch.ones(n_mib * 2**18, device=dev)
        sync = torch.cuda.synchronize if backend == "nccl" else (lambda: None)
        pg.allreduce([t]).wait()
        sync()
        right = float(t[0]) == world
        t0 = time.perf_counter()
        for _ in range(5):
            pg.allreduce([t]).wait()
        sync()
        dt = (time.perf_counter() - t0) / 5
        pg.shutdown()
        q.put((rank, "ok" if right else f"wrong sum {float(t[0])}", dt))
    except BaseException as e:
        q.put((rank, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}", None))


def _ranks(world: int, backend: str, n_mib: int, timeout: float) -> tuple[str, float | None]:
    "Start `world` spawned ranks; ('ok', seconds per allreduce) or (why not, None)."
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    ps = [ctx.Process(target=_rank, args=(r, world, port, backend, n_mib, q), daemon=True) for r in range(world)]
    for p in ps:
        p.start()
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < world:
            got.append(q.get(timeout=max(0.1, deadline - time.monotonic())))
            if got[-1][1] != "ok":
                break
    except Exception:
        got.append((-1, f"no answer within {timeout:.0f} s (hung)", None))
    finally:
        for p in ps:
            p.join(2)
            if p.is_alive():
                p.kill()
    bad = next((g for g in got if g[1] != "ok"), None)
    if bad:
        return f"rank {bad[0]}: {bad[1]}", None
    return "ok", max(g[2] for g in got)


def child_nccl(a) -> dict:
    "NCCL as train_torch uses it: 1 rank; 2 ranks on the one GPU (DDP over NCCL); gloo with 2 ranks to compare."
    import torch

    os.environ.setdefault("NCCL_DEBUG", "WARN")  # NCCL says why it refuses a setup
    n_mib, out, ratios = 64, {}, []
    runs = [("nccl", 1), ("gloo", 2), ("nccl", 2)] if torch.cuda.is_available() else [("gloo", 2)]
    for backend, world in runs:  # the one that may hang (NCCL, 2 ranks on 1 GPU) last
        status, dt = _ranks(world, backend, n_mib, 30 if (backend, world) == ("nccl", 2) else 40)
        out[f"{backend}x{world}"] = {"status": status, "allreduce_s": dt}
        speed = ""
        if dt and world > 1:
            bus = 2 * (world - 1) / world * n_mib / 1024 / dt
            speed = f", allreduce of {n_mib} MiB in {dt * 1e3:.2f} ms ({bus:.1f} GiB/s bus)"
        print(f"  {backend} with {world} rank(s){' on one GPU' if backend == 'nccl' else ''}: {status}{speed}")
    if not torch.cuda.is_available():
        return {"status": "skipped", "note": f"no GPU; gloo with 2 ranks: {out['gloox2']['status']}", **out}
    n1, n2, g2 = out["ncclx1"], out["ncclx2"], out["gloox2"]
    if n2["status"] == "ok" and g2["status"] == "ok":
        ratios.append(
            f"allreduce {n_mib} MiB, 2 ranks: NCCL on one GPU / gloo on CPU speed = "
            f"{g2['allreduce_s'] / n2['allreduce_s']:.1f} ({n2['allreduce_s'] * 1e3:.2f} ms vs "
            f"{g2['allreduce_s'] * 1e3:.2f} ms)"
        )
    note = f"NCCL 1 rank: {n1['status']}; NCCL 2 ranks on one GPU: {n2['status']}" + (
        ""
        if n2["status"] == "ok"
        else " (DDP over NCCL needs one GPU per rank: on one GPU train_torch "
        "trains with backend nccl and world_size 1, no collective)"
    )
    return {
        "status": "ok" if n1["status"] == "ok" and g2["status"] == "ok" else "failed",
        "note": note,
        "ratios": ratios,
        **out,
    }


def child_xgboost(a) -> dict:
    "Plain xgboost `hist` on the same random data with device='cuda' and device='cpu'."
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.standard_normal((max(a.rows, 10_000), 32), dtype=np.float32)
    y = (X[:, :4].sum(1) + rng.standard_normal(len(X), dtype=np.float32) > 0).astype(np.float32)
    d = xgb.DMatrix(X, label=y)
    secs = {}
    for dev in ("cuda", "cpu"):
        p = {"tree_method": "hist", "device": dev, "objective": "binary:logistic", "max_depth": 8}
        xgb.train(p, d, num_boost_round=2)  # warm-up
        t = time.perf_counter()
        xgb.train(p, d, num_boost_round=100)
        secs[dev] = time.perf_counter() - t
        print(f"  device={dev}: 100 rounds on {len(X):,} x 32 in {secs[dev]:.2f} s")
    ratio = (
        f"xgboost 100 rounds, device cuda / cpu speed = {secs['cpu'] / secs['cuda']:.1f} (xgboost {xgb.__version__})"
    )
    return {"status": "ok", "note": ratio, "ratios": [ratio], "seconds": secs}


CHILDREN = {
    "sdk": child_sdk,
    "clusters": child_clusters,
    "torch": child_torch,
    "nccl": child_nccl,
    "xgboost": child_xgboost,
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    ap.add_argument("--dry-run", action="store_true", help="check the kit without a GPU, install and start nothing")
    ap.add_argument("--check-wheels", action="store_true", help="with --dry-run: only the wheels and the limit")
    ap.add_argument("--smoke", action="store_true", help="the whole kit on CPU, tiny sizes, GPU-machine packages")
    ap.add_argument("--wheels", default=str(WHEELS), help="folder of the carried wheels")
    ap.add_argument("--requirements", default=str(REQUIREMENTS), help="the pinned list of carried wheels")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help="carry limit (working tree + wheels)")
    ap.add_argument("--expect-test", action="append", default=[], help="a further GPU test that must exist")
    ap.add_argument("--budget", type=float, help=f"seconds for the whole run (default {BUDGET_S}, smoke: twice)")
    ap.add_argument("--skip", action="append", default=[], choices=list(STEPS), help="a step not to run")
    ap.add_argument("--json", help="also write the summary, ratios and results here")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of training data (torch, xgboost)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4096, help="global batch size")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer widths")
    ap.add_argument("--cpu-workers", type=int, default=0, help="CPU workers to compare with (0: cores/4, at most 4)")
    ap.add_argument("--repeats", type=int, default=2, help="cluster starts of each kind")
    ap.add_argument("--step", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--stacks-after", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.budget = args.budget or BUDGET_S * (2 if args.smoke else 1)
    if args.smoke and "--rows" not in (argv if argv is not None else sys.argv):
        args.rows, args.epochs, args.batch, args.hidden, args.repeats = 20_000, 2, 256, [16], 1
        args.cpu_workers = args.cpu_workers or 2
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.step:
        if args.stacks_after:
            import faulthandler

            faulthandler.dump_traceback_later(args.stacks_after)
        res = CHILDREN[args.step](args)
        print("RESULT " + json.dumps(res, default=str), flush=True)
        return 0
    if args.dry_run:
        return dry_run(args)
    os.environ.setdefault("MLSCALE_HOME", tempfile.mkdtemp(prefix="gpu-check-"))  # registry, stores: thrown away
    return run_kit(args)


if __name__ == "__main__":
    sys.exit(main())
