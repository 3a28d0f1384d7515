"""Recompute BatchNorm statistics for averaged weights (torch only).

An average of weights is not matched by the average of the running statistics; the SWA recipe
recomputes them with one pass over data. SB3's default MLP/CNN policies have no BatchNorm; custom
feature extractors may.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.no_grad()
def update_batch_norm(
    module: nn.Module, inputs: Tensor, batch_size: int = 256, forward: Callable[[Tensor], object] | None = None
) -> None:
    """Reset and recompute every BatchNorm's running statistics of ``module`` from ``inputs``.

    :param module: holds the BatchNorm layers (e.g. a policy's ``features_extractor``).
    :param inputs: a batch of inputs (already preprocessed as the module expects).
    :param batch_size: chunk size of the forward passes.
    :param forward: what to call on each chunk (default ``module``); e.g. ``policy.extract_features``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; it must be an int >= 1")
    if not has_batch_norm(module):
        return
    chunks = list(torch.split(inputs, batch_size))
    if forward is None:
        update_bn(chunks, module)
        return
    # torch's update_bn calls module(input); route through `forward` with the same statistics handling.
    wrapper = _Forward(module, forward)
    update_bn(chunks, wrapper)


class _Forward(nn.Module):
    def __init__(self, module: nn.Module, forward: Callable[[Tensor], object]):
        super().__init__()
        self.inner = module
        self._fn = forward

    def forward(self, x: Tensor):
        return self._fn(x)
