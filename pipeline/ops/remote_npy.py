""".npy files at fsspec URLs: read by byte ranges, written as parts joined on the client.

A C-ordered .npy holds its rows one after another, so a block of whole rows is one byte
range of the object: each read task fetches exactly its rows (``cat_file`` with a start
and an end; an HTTP range request, an S3 ranged GET). A Fortran-ordered file is the same
seen from its last axis. Object stores cannot write into the middle of an object, so a
remote .npy is written as one part per block of whole rows, which the client then streams,
after the header, into the final object, one part at a time.
"""

from __future__ import annotations

import io
import math

import numpy as np

from pipeline.errors import OpError
from pipeline.storage import Remote, failure


# The first read: the header of any ordinary .npy (a longer one is read in a second).
HEAD_BYTES = 4096


class RemoteNpy:
    """Array-like view of a remote .npy file; each requested block is one ranged read.

    Only the URL, the options and the header travel to the workers.
    """

    def __init__(self, target: Remote):
        self.target = target
        fs, path = target.fs()
        try:
            head = fs.cat_file(path, start=0, end=HEAD_BYTES)
            if len(head) >= 12:  # magic, version, header length: the header's own size
                long = head[6] != 1
                size = (12 + int.from_bytes(head[8:12], "little")) if long \
                    else (10 + int.from_bytes(head[8:10], "little"))
                if size > len(head):
                    head = fs.cat_file(path, start=0, end=size)
            f = io.BytesIO(head)
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        except ValueError as e:
            raise OpError(f"cannot read '{target.name}' as .npy: {e}", where="path") from None
        except Exception as e:
            raise failure(target, e) from None
        if dtype.hasobject:
            raise OpError(f"'{target.name}' holds Python objects, which .npy keeps pickled",
                          where="path", hint="only numeric arrays are read")
        self.shape, self.dtype, self.ndim, self.fortran = tuple(shape), dtype, len(shape), fortran

    def natural_chunks(self) -> dict[int, int | str]:
        """Chunks whose blocks are byte ranges: whole along every axis but the outer one."""
        outer = self.ndim - 1 if self.fortran else 0
        return {axis: "auto" if axis == outer else -1 for axis in range(self.ndim)}

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        shape = self.shape[::-1] if self.fortran else self.shape
        index = index[::-1] if self.fortran else index
        rows = index[0].indices(shape[0]) if shape else (0, 0, 1)
        start, stop = rows[0], max(rows[1], rows[0])
        row_bytes = math.prod(shape[1:]) * self.dtype.itemsize
        fs, path = self.target.fs()
        data = fs.cat_file(path, start=self.offset + start * row_bytes,
                           end=self.offset + (stop if shape else 1) * row_bytes)
        block = np.frombuffer(data, dtype=self.dtype).reshape((stop - start, *shape[1:])
                                                               if shape else ())
        block = block[(slice(None), *index[1:])] if shape else block
        return np.array(block.T if self.fortran else block)  # writable, C-ordered


def write_parts(x, parts: Remote):
    """A lazy array of marks, one per block: each block of whole rows written as the raw
    bytes of ``parts/part.<i>``."""
    rows = x.rechunk({axis: -1 for axis in range(1, x.ndim)}) if x.ndim > 1 else x
    if x.ndim == 0:
        rows = x.reshape((1,))
    return rows.map_blocks(_write_part, parts=parts, dtype=bool,
                           chunks=((1,) * rows.numblocks[0],) + ((1,),) * (rows.ndim - 1))


def _write_part(block, parts: Remote, block_info=None):
    number = block_info[0]["chunk-location"][0] if block_info else 0
    fs, path = parts.fs()
    fs.pipe_file(f"{path}/part.{number}", np.ascontiguousarray(block).tobytes())
    return np.ones((1,) * block.ndim, dtype=bool)


def join(parts: Remote, target: Remote, shape: tuple, dtype: np.dtype, count: int) -> None:
    """Stream the header and the ``count`` parts, in order, into ``target``; then remove
    the parts. One part at a time is in this process's memory."""
    fs, folder = parts.fs()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": tuple(shape)}
    with target.open("wb") as out:
        try:
            np.lib.format.write_array_header_1_0(out, header)
        except ValueError:  # a header over 64 KiB (very many dimensions) needs format 2.0
            np.lib.format.write_array_header_2_0(out, header)
        for number in range(count):
            out.write(fs.cat_file(f"{folder}/part.{number}"))
    fs.rm(folder, recursive=True)
