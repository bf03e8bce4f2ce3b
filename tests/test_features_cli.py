"""`mlscale features apply|materialize|show|training-frame` on a repository of the user's own definitions."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from conftest import mlscale  # noqa: E402
from feature_domains import DEVICE_REPO, H, T0, make_failures, make_readings  # noqa: E402




def test_features_cli_on_a_users_repository(project, tmp_path):
    from mlscale_sdk import features as F

    rd = make_readings(tmp_path / "readings")
    repo = F.init_repo()
    (repo / "devices.py").write_text(DEVICE_REPO.format(path=tmp_path / "readings"))
    env = {"MLSCALE_HOME": str(project), "PYTHONWARNINGS": "ignore"}
    assert "registered device, device_latest" in mlscale("features", "apply", env=env).stdout
    out = mlscale("features", "materialize", "--start", (T0 - H).isoformat(), "--end", (T0 + 47 * H).isoformat(),
                  env=env).stdout
    assert "device_latest" in out and "12 entities" in out, out
    info = json.loads(mlscale("features", "show", "--json", env=env).stdout)
    assert info["feature_views"][0]["name"] == "device_latest" and info["feature_views"][0]["materialized_until"]
    ev = make_failures(rd)
    ev.to_parquet(tmp_path / "events.parquet")
    r = mlscale("features", "training-frame", str(tmp_path / "events.parquet"), "-f", "device_latest",
                "--out", str(tmp_path / "tf.parquet"), env=env)
    tf = pd.read_parquet(tmp_path / "tf.parquet")
    assert f"{len(ev)} rows" in r.stdout and tf["failed"].tolist() == ev["failed"].tolist()
    assert tf["temperature"].notna().sum() > 10


def test_features_cli_bad_input_is_one_clear_line(project, tmp_path):
    env = {"MLSCALE_HOME": str(project), "PYTHONWARNINGS": "ignore"}
    r = mlscale("features", "show", "--repo", str(tmp_path / "nowhere"), env=env, check=False)
    assert r.returncode != 0 and "no Feast repository" in r.stderr and "Traceback" not in r.stderr, r.stderr
    pd.DataFrame({"device_id": [1], "event_timestamp": [T0]}).to_parquet(tmp_path / "e.parquet")
    r = mlscale("features", "training-frame", str(tmp_path / "e.parquet"), "-f", "nope", "--out",
                str(tmp_path / "o.parquet"), env=env, check=False)
    assert r.returncode != 0 and "nope" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o.parquet").exists()
