"""mlscale: notebook-first scaling for machine learning.

Dask clusters, distributed training, MLflow, scheduled jobs.
"""

__version__ = "0.1.0"

# The friendly top-level names resolve lazily, so `import mlscale_sdk` stays light.
_LAZY = {
    "start_cluster": "clusters",
    "list_clusters": "clusters",
    "train_xgboost": "train",
    "predict": "train",
    "train_torch": "train",
    "tune": "train",
    "start_run": "tracking",
    "promote": "tracking",
    "settings": "config",
}
_MODULES = {
    "config",
    "clusters",
    "data",
    "features",
    "train",
    "tracking",
    "cli",
    "demo",
    "monitor",
    "jobs",
    "scheduler",
    "widgets",
}


def _jupyter_server_extension_points():
    "The Jupyter server extension (handlers in `mlscale_sdk.server`, imported only by the server)."
    return [{"module": "mlscale_sdk.server"}]


def __getattr__(name):
    import importlib

    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY, *_MODULES])
