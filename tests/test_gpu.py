"""GPU paths no other test covers: the local-gpu profile's RMM pool, and the NCCL process group `train_torch` builds
(through PyTorch's private c10d API) with the torch installed here. Skipped with the reason without a GPU; run on a
GPU machine by bench/gpu_check.py."""

import pytest

from mlscale_sdk.clusters import gpu_info, start_cluster

needs_gpu = pytest.mark.skipif(gpu_info().count == 0, reason=f"no NVIDIA GPU visible: {gpu_info().reason}")


def _memory_resources():
    "The chain of RMM memory resources of this process, outermost first (run on a worker)."
    import rmm

    mr, chain = rmm.mr.get_current_device_resource(), []
    while mr is not None and len(chain) < 8:
        chain.append(type(mr).__name__)
        mr = getattr(mr, "upstream_mr", None)
    return chain


@pytest.mark.gpu
@needs_gpu
def test_local_gpu_rmm_pool(project):
    pytest.importorskip("dask_cuda", reason="dask-cuda is not installed (pip install 'mlscale-sdk[gpu]')")
    pytest.importorskip("rmm", reason="RMM is not installed (pip install rmm-cu13)")
    with start_cluster("local-gpu", rmm_pool_size="1GB", register=False) as h:
        h.wait_for_workers(1)
        chains = h.client.run(_memory_resources)
        assert chains and all("PoolMemoryResource" in c for c in chains.values()), chains
        assert h.client.submit(lambda: __import__("torch").ones(4, device="cuda").sum().item()).result() == 4.0


@pytest.mark.gpu
@needs_gpu
def test_nccl_process_group_with_this_torch():
    torch = pytest.importorskip("torch")
    try:  # train_torch's process-group builder: in the torch training module, or in `train` itself
        from mlscale_sdk.train.torch import _process_group
    except ModuleNotFoundError:
        from mlscale_sdk.train import _process_group
    from conftest import free_port

    torch.cuda.set_device(0)
    pg = _process_group("127.0.0.1", free_port(), 0, 1, "test-gpu", "nccl", 30)
    try:
        t = torch.full((8,), 3.0, device="cuda")
        pg.allreduce([t]).wait()
        torch.cuda.synchronize()
        assert t.tolist() == [3.0] * 8
    finally:
        pg.shutdown()
