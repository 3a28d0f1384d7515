"""The NaN/Inf guard of an update on an accelerator, where a host branch would synchronize.

A snapshot that holds NaN or Inf must leave the average untouched, decided on the device: the
snapshot's weight becomes 0 and each source is ``torch.where(ok, live, average)`` (IEEE arithmetic
alone cannot drop a NaN: ``0 * nan`` is ``nan``), in chunks of at most ``WHERE_CHUNK_BYTES`` so
the transient stays far below a second copy. Opt-in (``WeightAverage(fused=True)``, not yet
measured on a GPU): torch's fused SGD kernel used as a masked lerp, one pass with no transient.
"""

from __future__ import annotations

import torch
from torch import Tensor

WHERE_CHUNK_BYTES = 16 << 20  # bound on the transient where() sources
# Devices whose fused SGD kernel reads ``found_inf`` and the learning rate from device memory; the
# CPU takes that path only when a test forces the accelerator path on CPU tensors.
FUSED_DEVICES = ("cuda", "cpu")
# float32 only: the kernel takes the weight as a float32 (float64 would lose precision), and
# torch 2.13's CPU kernel leaves bfloat16/float16 tensors of 16 or more elements unchanged.
FUSED_DTYPES = (torch.float32,)


def guarded_lerp_(avg: list[Tensor], live: list[Tensor], weight: Tensor, ok: Tensor, fused: bool) -> bool:
    """``avg += weight * (live - avg)`` where the device bool ``ok`` holds, else nothing; no sync.

    Returns whether the fused kernel is still worth trying (False once this torch lacks it)."""
    if fused:
        done = _fused_masked_lerp(avg, live, weight, ok)
        if done:
            return True
        fused = done is not None  # None: this torch lacks the kernel
    w = weight.to(live[0].dtype)
    for a, x in chunks(avg, live):
        sources = [torch.where(ok, xi, ai) for xi, ai in zip(x, a)]
        torch._foreach_lerp_(a, sources, [w] * len(a))
    return fused


def chunks(avg: list[Tensor], live: list[Tensor]) -> list[tuple[list[Tensor], list[Tensor]]]:
    """(averages, sources) in pieces of at most WHERE_CHUNK_BYTES; a flat buffer is sliced,
    a tensor list split between tensors (one tensor larger than the bound is one piece)."""
    if len(avg) == 1 and avg[0].is_contiguous() and live[0].is_contiguous():
        step = max(1, WHERE_CHUNK_BYTES // avg[0].element_size())
        a, x = avg[0].view(-1), live[0].view(-1)
        return [([a[lo : lo + step]], [x[lo : lo + step]]) for lo in range(0, a.numel(), step)]
    pieces, lo, size = [], 0, 0
    for i, t in enumerate(live):
        nbytes = t.numel() * t.element_size()
        if i > lo and size + nbytes > WHERE_CHUNK_BYTES:
            pieces.append((avg[lo:i], live[lo:i]))
            lo, size = i, 0
        size += nbytes
    pieces.append((avg[lo:], live[lo:]))
    return pieces


def _fused_masked_lerp(avg: list[Tensor], live: list[Tensor], weight: Tensor, ok: Tensor) -> bool | None:
    """The guarded lerp in one pass with no transient; False when the tensors do not qualify, None
    when this torch lacks the kernel (in both cases nothing was written).

    torch's fused SGD kernel is that operation: with ``grads = live``, ``weight_decay = -1`` and
    ``lr = -weight`` its step ``p -= lr * (g + weight_decay * p)`` is ``p += weight * (live - p)``,
    and it reads ``lr`` and ``found_inf`` from device memory, skipping the whole step when
    ``found_inf`` is 1 (the mechanism ``GradScaler`` uses with fused optimizers). The live
    tensors are only read (they are written only when a ``grad_scale`` is given)."""
    first = live[0]
    if first.device.type not in FUSED_DEVICES or first.dtype not in FUSED_DTYPES or not all(t.is_contiguous() for t in live):
        return False
    try:
        torch._fused_sgd_(
            avg,
            live,
            [],
            weight_decay=-1.0,
            momentum=0.0,
            lr=(-weight).to(torch.float32),
            dampening=0.0,
            nesterov=False,
            maximize=False,
            is_first_step=False,
            found_inf=(~ok).to(torch.float32),
        )
    except (AttributeError, NotImplementedError, RuntimeError, TypeError):  # older torch: inputs are checked before any write
        return None
    return True
