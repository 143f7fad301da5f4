"""Device->host spilling counted per stage (pipeline/gpu/spill.py), on workers whose data
store has a device buffer as dask-cuda's DeviceHostFile does: a zict Buffer whose
``fast`` side is full from the first byte, so every stored result spills."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

import pytest
import zict
from dask.sizeof import sizeof

from pipeline import backends, plan, runner, spec
from pipeline.cluster import Session
from pipeline.gpu.spill import SpillMeter

WORKFLOW = """
name: spills
stages:
  - {id: signal, op: random, shape: [256, 64], chunks: [32, 64], seed: 1}
  - {id: squared, op: elementwise, inputs: {x: signal}, expr: "x * x"}
  - {id: total, op: reduce, input: squared, how: sum, axis: 0}
  - {id: save, op: write, input: total, path: total.npy}
"""


class DeviceLikeStore(MutableMapping):
    """The part of dask-cuda's DeviceHostFile the meter hooks: ``device_buffer``."""

    def __init__(self, device_bytes: int):
        self.device_buffer = zict.Buffer({}, {}, n=device_bytes,
                                         weight=lambda k, v: sizeof(v))

    def __getitem__(self, key):
        return self.device_buffer[key]

    def __setitem__(self, key, value):
        self.device_buffer[key] = value

    def __delitem__(self, key):
        del self.device_buffer[key]

    def __iter__(self):
        return iter(self.device_buffer)

    def __len__(self):
        return len(self.device_buffer)


@pytest.fixture(params=[0, 1 << 30], ids=["device-full", "device-roomy"])
def spilling_session(request):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None, silence_logs=logging.CRITICAL,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                      data=(DeviceLikeStore, {"device_bytes": request.param})) as c, \
            Client(c) as client:
        client.register_plugin(SpillMeter())
        client.register_plugin(SpillMeter())  # again, as a second run would: counted once
        yield Session(client, "LocalCluster", c.scheduler_address, None, 1), request.param


@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
def test_spilled_bytes_are_counted_for_the_stage_that_stored_them(spilling_session, tmp_path,
                                                                  fuse):
    session, device_bytes = spilling_session
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    wf = spec.load(tmp_path / "wf.yaml", output_dir=tmp_path / "out")
    report = runner.run(plan.build(wf), backends.CPU, session, fuse=fuse)
    stages = {s["id"]: s for s in report["stages"]}
    if device_bytes:  # nothing had to move
        assert report["totals"]["spilled_bytes"] == 0
        return
    assert report["totals"]["spilled_bytes"] == sum(s["spilled_bytes"] for s in stages.values())
    assert report["totals"]["unspilled_bytes"] > 0  # and came back for the reduction
    if fuse:
        # random -> x * x -> the partial sums run as one task per chunk: only the partial
        # sums (of `total`) are ever stored, so only they spill
        assert stages["total"]["spilled_bytes"] > 0
        assert stages["signal"]["spilled_bytes"] + stages["squared"]["spilled_bytes"] == 0
        return
    # every result spilled as it was stored: the 8 chunks of 16 KiB each of signal and
    # squared (blockwise fusion may merge them into one stage's tasks)
    assert stages["signal"]["spilled_bytes"] + stages["squared"]["spilled_bytes"] >= 8 * 16384
