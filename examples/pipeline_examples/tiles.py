"""Deep-learning inference as a pipeline stage: a small PyTorch CNN classifies image tiles.

Use it with ``op: map_blocks`` (see ``examples/tile_inference.yaml``)::

    function: "pipeline_examples.tiles:classify"
    kwargs: {tile: 64}

Each chunk of a stack of images (``[n, height, width]``) is cut into ``tile`` x ``tile``
tiles and every tile gets three class probabilities: ``dark``, ``bright``, ``textured``.
The chunk reaches PyTorch through DLPack without a copy, on the device it lives on: a
CuPy chunk on the GPU backend becomes a CUDA tensor sharing its memory, a NumPy chunk on
the CPU backend a CPU tensor sharing its memory; the probabilities go back the same way.
(The DLPack exchange also orders the work between CuPy's and PyTorch's CUDA streams.)

The network is hand-weighted, as no weights can be downloaded here: a fixed Sobel
convolution gives each pixel's gradient magnitude, each tile is pooled to two features
(mean intensity, mean gradient magnitude), and a linear layer maps them to the classes.
``weights:`` loads a ``state_dict`` saved with ``torch.save`` instead, as a trained
model would come.
"""

from __future__ import annotations

import functools

CLASSES = ("dark", "bright", "textured")
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
# logits = HEAD_WEIGHT @ [mean, gradient] + HEAD_BIAS
HEAD_WEIGHT = ((-3.0, 0.0), (3.0, 0.0), (0.0, 2.0))
HEAD_BIAS = (0.0, 0.0, -4.0)


def classify(block, *, tile: int = 64, weights: str | None = None):
    """Class probabilities of every tile of ``block``.

    Parameters
    ----------
    block : numpy.ndarray or cupy.ndarray
        ``[n, height, width]`` images; height and width a multiple of ``tile``.
    tile : int
        Tile size in pixels.
    weights : str, optional
        A ``state_dict`` file for :class:`TileNet` (``torch.save(model.state_dict())``).

    Returns
    -------
    numpy.ndarray or cupy.ndarray (as ``block``)
        ``[n, height // tile, width // tile, 3]`` float32 probabilities.

    Raises
    ------
    ValueError
        The chunk is not 3-D, or not a whole number of tiles.
    """
    import torch

    if block.ndim != 3:
        raise ValueError(f"expected [n, height, width] chunks, got {block.ndim} axes")
    n, h, w = block.shape
    if tile < 3 or h % tile or w % tile:
        raise ValueError(f"a {h}x{w} chunk is not a whole number of {tile}x{tile} tiles "
                         "(make the chunks a multiple of the tile size)")
    images = to_tensor(block)
    tiles = (images.reshape(n, h // tile, tile, w // tile, tile).permute(0, 1, 3, 2, 4)
             .reshape(-1, 1, tile, tile).to(torch.float32))
    with torch.inference_mode():
        probs = model(weights, str(images.device))(tiles)
    return from_tensor(probs.reshape(n, h // tile, w // tile, len(CLASSES)).contiguous(),
                       like=block)


def to_tensor(array):
    """``array`` as a torch tensor sharing its memory (DLPack; NumPy or CuPy)."""
    import torch

    return torch.from_dlpack(array)


def from_tensor(tensor, *, like):
    """``tensor`` as an array of ``like``'s library (NumPy or CuPy), sharing its memory."""
    if type(like).__module__.partition(".")[0] == "cupy":
        import cupy

        return cupy.from_dlpack(tensor)
    import numpy as np

    return np.from_dlpack(tensor)


@functools.lru_cache(maxsize=8)
def model(weights: str | None, device: str):
    """The network on ``device``, built once per worker process (and weights file)."""
    import torch

    net = tilenet_class()()
    if weights is not None:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.to(device).eval()


@functools.lru_cache(maxsize=None)
def tilenet_class():
    """The network's class (defined on first use, so importing this module does not
    import torch: the client imports it to check the function exists)."""
    import torch
    from torch import nn

    class TileNet(nn.Module):
        """Sobel gradient magnitude -> per-tile [mean, mean gradient] -> linear -> softmax."""

        def __init__(self):
            super().__init__()
            self.sobel = nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=False)
            sx = torch.tensor(SOBEL_X)
            self.sobel.weight.data = torch.stack([sx, sx.T]).unsqueeze(1)
            self.head = nn.Linear(2, len(CLASSES))
            self.head.weight.data = torch.tensor(HEAD_WEIGHT)
            self.head.bias.data = torch.tensor(HEAD_BIAS)

        def forward(self, tiles):
            g = self.sobel(tiles)
            magnitude = torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)
            features = torch.stack([tiles.mean(dim=(1, 2, 3)), magnitude.mean(dim=(1, 2))],
                                   dim=1)
            return torch.softmax(self.head(features), dim=1)

    return TileNet


def __getattr__(name):
    if name == "TileNet":
        return tilenet_class()
    raise AttributeError(name)
