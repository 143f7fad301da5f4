"""GPU plumbing: NVML queries, the GPU cluster's preflight checks, pinned host->device
copies, spill metering, and ``doctor``. Nothing here imports cupy, cudf or dask_cuda at
import time: they are imported inside the functions that run where a GPU is."""
