"""Kubernetes profiles on paper: the DaskCluster a profile would create, checked against the operator's CRD schema."""
import copy
import pytest
import yaml

pytest.importorskip("dask_kubernetes")
from mlscale_sdk import clusters as C  # noqa: E402
from mlscale_sdk import kubernetes as K  # noqa: E402


def _containers(spec):
    return {part: spec["spec"][part]["spec"]["containers"][0] for part in ("scheduler", "worker")}


def test_shipped_profile_renders_a_valid_daskcluster(project, monkeypatch):
    monkeypatch.setenv("MLSCALE_KUBE_IMAGE", "registry.example.org/team/ml:1.4")
    spec = K.validate_cluster(K.render_cluster("kubernetes", name="team-a"))
    assert (spec["apiVersion"], spec["kind"], spec["metadata"]["name"]) == ("kubernetes.dask.org/v1", "DaskCluster", "team-a")
    assert spec["spec"]["worker"]["replicas"] == 2 and spec["spec"]["idleTimeout"] == 3600
    for part, c in _containers(spec).items():
        assert c["image"] == "registry.example.org/team/ml:1.4", part
        assert c["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
        assert {"name": "MLSCALE_ON_KUBERNETES", "value": "1"} in c["env"], part
    svc = spec["spec"]["scheduler"]["service"]
    assert svc["type"] == "ClusterIP" and svc["selector"]["dask.org/cluster-name"] == "team-a"


def test_overrides_and_generated_name(project):
    spec = K.validate_cluster(K.render_cluster("kubernetes", n_workers=5))
    assert spec["spec"]["worker"]["replicas"] == 5
    assert spec["metadata"]["name"].startswith("dask-")


def test_image_and_env_are_profile_only(project):
    for bad in ({"image": "evil/img"}, {"env": {"A": "1"}}):
        with pytest.raises(C.ClusterValidationError, match="may only be set in a profile file"):
            K.render_cluster("kubernetes", **bad)
        with pytest.raises(C.ClusterValidationError, match="may only be set in a profile file"):
            K.render_cluster({"cls": K.KUBE_CLASS, "options": bad})


def test_kubecluster_is_allowed_and_imports(project):
    from distributed.deploy import Cluster
    assert C.check_cluster_class(K.KUBE_CLASS) == K.KUBE_CLASS
    assert issubclass(C._import_cls(K.KUBE_CLASS), Cluster)


@pytest.mark.parametrize("options, message", [
    ({"imgae": "x"}, "unknown KubeCluster option(s) imgae"),
    ({"image": "bad image"}, "image must be an image reference"),
    ({"n_workers": -1}, "n_workers must be a non-negative integer"),
    ({"n_workers": "2"}, "n_workers must be a non-negative integer"),
    ({"resources": {"limit": {"cpu": "1"}}}, "'limits' and/or 'requests'"),
    ({"resources": {"limits": {"memory": "lots"}}}, "'lots' is not a quantity"),
    ({"resources": {"limits": {"CPU!": "1"}}}, "is not a resource name"),
    ({"env": [{"value": "x"}]}, "no valid variable name"),
    ({"env": "A=1"}, "env must be a mapping or a list"),
    ({"scheduler_service_type": "Ingress"}, "scheduler_service_type must be one of"),
    ({"idle_timeout": -5}, "idle_timeout must be a non-negative integer"),
    ({"custom_cluster_spec": "/etc/passwd"}, "custom_cluster_spec is not supported"),
    ({"name": "Team_A"}, "not a valid Kubernetes cluster name"),
    ({"namespace": "Bad NS"}, "not a valid Kubernetes cluster name"),
])
def test_bad_option_is_a_clear_error(project, options, message):
    (project / "clusters").mkdir()
    (project / "clusters" / "k.yaml").write_text(yaml.safe_dump(
        {"cls": K.KUBE_CLASS, "options": {"image": "ghcr.io/dask/dask:latest", **options}}))
    before = sorted(p.name for p in project.rglob("*"))
    with pytest.raises(C.ClusterValidationError) as e:
        K.render_cluster("k")
    assert message in str(e.value)
    assert sorted(p.name for p in project.rglob("*")) == before      # nothing written


def test_not_a_kubernetes_profile(project):
    with pytest.raises(C.ProfileError, match="not a Kubernetes profile"):
        K.render_cluster("local")


def test_the_crd_schema_catches_a_broken_resource(project):
    spec = K.render_cluster("kubernetes", name="ok")
    broken = copy.deepcopy(spec)
    broken["spec"]["worker"]["replicas"] = "two"
    with pytest.raises(C.ClusterValidationError, match="spec.worker.replicas"):
        K.validate_cluster(broken)
    missing = copy.deepcopy(spec)
    del missing["spec"]["worker"]
    with pytest.raises(C.ClusterValidationError, match="'worker' is a required property"):
        K.validate_cluster(missing)
    nameless = copy.deepcopy(spec)
    del nameless["spec"]["scheduler"]["spec"]["containers"][0]["name"]
    with pytest.raises(C.ClusterValidationError, match="'name' is a required property"):
        K.validate_cluster(nameless)
    with pytest.raises(C.ClusterValidationError, match="not a kubernetes.dask.org/v1 DaskCluster"):
        K.validate_cluster({**spec, "kind": "Pod"})
    assert K.crd_schema()["properties"]["spec"]["required"] == ["scheduler", "worker"]
