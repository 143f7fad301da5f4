import importlib.util

import pytest

from pipeline.gpu import preflight
from pipeline.backends import Detection
from pipeline.errors import InputError
from pipeline.gpu.nvml import Gpu
from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

GIB = 1 << 30
TWO_GPUS = Detection(gpus=(
    Gpu(index=0, name="H100", memory_total=80 * GIB, uuid="GPU-aaaa"),
    Gpu(index=1, name="H100", memory_total=40 * GIB, uuid="GPU-bbbb")),
    driver="580.1", cuda_driver_version="13.0")


def spec(**kw) -> ClusterSpec:
    return ClusterSpec(**{**CLUSTER_DEFAULTS, **kw})


def check(env=None, **kw):
    preflight.check_local_gpu_cluster(spec(**kw), TWO_GPUS, env or {})


def test_good_settings_pass():
    check(device_memory_limit=0.8, rmm_pool_size="30GB", n_workers=2)
    check(env={"CUDA_VISIBLE_DEVICES": "1"}, rmm_pool_size="39GiB")


def test_visible_devices_by_index_and_uuid():
    assert [g.index for g in preflight.visible_gpus(TWO_GPUS, {})] == [0, 1]
    env = {"CUDA_VISIBLE_DEVICES": "GPU-bbbb,0"}
    assert [g.index for g in preflight.visible_gpus(TWO_GPUS, env)] == [1, 0]


@pytest.mark.parametrize("env, kw, where, fragment", [
    ({"CUDA_VISIBLE_DEVICES": "0,3"}, {}, "CUDA_VISIBLE_DEVICES", "names '3'"),
    ({"CUDA_VISIBLE_DEVICES": ""}, {}, "CUDA_VISIBLE_DEVICES", "selects no GPU"),
    ({}, {"n_workers": 3}, "cluster.n_workers", "2 GPU(s) are visible"),
    ({}, {"device_memory_limit": "100GB"}, "cluster.device_memory_limit",
     "more than the GPU's 40.00 GiB"),
    ({"CUDA_VISIBLE_DEVICES": "1"}, {"rmm_pool_size": "50GB"}, "cluster.rmm_pool_size",
     "more than the GPU's"),
    ({}, {"rmm_pool_size": "lots"}, "cluster.rmm_pool_size", "bad size 'lots'"),
    ({}, {"protocol": "ucx"}, "cluster.protocol", "UCX (ucxx) is not installed"),
    ({}, {"enable_cudf_spill": True}, "cluster.enable_cudf_spill", "cuDF is not installed"),
])
def test_bad_gpu_cluster_settings(env, kw, where, fragment, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as on a host without cuDF / UCX
                        lambda name, *a: None if name in ("cudf", "ucxx", "ucp")
                        else real_find_spec(name, *a))
    with pytest.raises(InputError) as e:
        check(env, **kw)
    assert e.value.where == where and fragment in e.value.what and e.value.exit_code == 2
