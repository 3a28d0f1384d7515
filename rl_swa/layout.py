"""Where the averaged tensors lie: the opt-in flat layout, and the NaN/Inf check that reads them.

:func:`flatten_parameters` lays parameters out back to back in one buffer; ``_Group`` keeps the
averages of one (device, dtype) and finds when live and averaged buffers match, so an update can
be one ``lerp_``; :func:`all_finite` is the guard's check (one sum per buffer or tensor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

# flatten_parameters starts each tensor on this boundary, as torch's CPU allocator does: BLAS
# kernels then take the same paths as on separate tensors and training is bit for bit the same.
ALIGN_BYTES = 64


def _align(numel: int, element_size: int) -> int:
    """``numel`` rounded up to the next ALIGN_BYTES boundary."""
    step = max(1, ALIGN_BYTES // element_size)
    return -(-numel // step) * step


def _aligned_offsets(tensors: list[Tensor]) -> tuple[list[int], int]:
    """Offsets (in elements) of tensors laid out back to back, each starting on an ALIGN_BYTES
    boundary, and the total span."""
    offsets, end = [], 0
    for t in tensors:
        offsets.append(end)
        end += _align(t.numel(), t.element_size())
    return offsets, end


def _runs(tensors: list[Tensor]) -> list[tuple[Tensor, list[int] | None]]:
    """Split tensors into runs that lie in one storage, in order: each contiguous, of one dtype, and
    starting where the previous one ended or less than ALIGN_BYTES later (the padding of
    :func:`flatten_parameters`). Per run: a 1-D view spanning it and the tensors' offsets in it;
    a tensor that is not contiguous is a run of its own, with offsets None."""
    runs: list[list] = []  # [first tensor, storage pointer, start, end, offsets]
    for t in tensors:
        if not t.is_contiguous():
            runs.append([t, None, 0, 0, None])
            continue
        ptr, offset = t.untyped_storage().data_ptr(), t.storage_offset()
        last = runs[-1] if runs else None
        if (
            last is not None
            and last[1] == ptr
            and last[0].dtype == t.dtype
            and last[3] <= offset < last[3] + max(1, ALIGN_BYTES // t.element_size())
        ):
            last[4].append(offset - last[2])
            last[3] = offset + t.numel()
        else:
            runs.append([t, ptr, offset, offset + t.numel(), [0]])
    return [
        (first if offsets is None else first.detach().as_strided((end - start,), (1,), start), offsets)
        for first, _, start, end, offsets in runs
    ]


def _sums(tensors: list[Tensor]) -> list[Tensor]:
    # One sum per tensor, accumulated in at least float32: NaN and Inf propagate into a sum
    # (Inf - Inf is NaN), and a finite sum cannot overflow unless the weights reach ~1e38 / numel,
    # i.e. have diverged anyway. A sum is one vectorized read, the cheapest reduction on CPU (2x
    # cheaper than the L2 norm, 2x than max or aminmax), and does not flag large finite weights.
    return [x.sum() if x.dtype in (torch.float32, torch.float64) else x.sum(dtype=torch.float32) for x in tensors]


def _host_finite(tensors: list[Tensor]) -> bool:
    """No NaN/Inf in any of the tensors, as a host bool (one sum each; on an accelerator: syncs)."""
    return math.isfinite(sum(s.item() for s in _sums(tensors)))


@torch.no_grad()
def all_finite(tensors: Iterable[Tensor]) -> bool:
    """True when no tensor holds NaN or Inf: one sum per run of tensors laid out back to back
    (:func:`flatten_parameters`), one per tensor otherwise. A host bool (on an accelerator: syncs)."""
    return _host_finite([view for view, _ in _runs(list(tensors))])


class _Group:
    """The tracked tensors of one (device, dtype) and their averages, one tensor each.

    With ``flat`` (opt-in) and contiguous live tensors the averages are views into one flat
    buffer, laid out like the live tensors when those lie in one buffer, else as
    :func:`flatten_parameters` would lay them out. When the two layouts match, an update is one
    sum and one lerp over the whole buffer instead of one kernel per tensor. The live layout is
    then re-checked at each update (one ``data_ptr`` per tensor), so moving a tensor
    (``module.to``, ``param.data = ...``) falls back to the per-tensor path instead of reading
    stale memory.
    """

    def __init__(self, live: list[Tensor], flat: bool = False):
        self.live = live
        self.avg_flat = self._offsets = self.live_flat = None
        if not flat or not all(t.is_contiguous() for t in live):
            self.avg = [torch.zeros_like(t, memory_format=torch.preserve_format, requires_grad=False) for t in live]
        else:
            runs = _runs(live)
            if len(runs) == 1:
                self._offsets, span = runs[0][1], runs[0][0].numel()
            else:
                self._offsets, span = _aligned_offsets(live)
            self.avg_flat = torch.zeros(span, dtype=live[0].dtype, device=live[0].device)
            self.avg = [self.avg_flat[o : o + t.numel()].view_as(t) for o, t in zip(self._offsets, live)]
        self._refresh()

    def _refresh(self) -> None:
        if self.avg_flat is None:
            return
        self._ptrs = [t.data_ptr() for t in self.live]
        self.live_flat = None
        if self.avg_flat is not None:
            runs = _runs(self.live)
            if len(runs) == 1 and runs[0][1] == self._offsets and runs[0][0].numel() == self.avg_flat.numel():
                self.live_flat = runs[0][0]

    def pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        """(averages, live sources) to update: the two flat buffers when the layouts match."""
        if self.avg_flat is None:
            return self.avg, self.live
        if [t.data_ptr() for t in self.live] != self._ptrs:
            self._refresh()
        if self.live_flat is not None:
            return [self.avg_flat], [self.live_flat]
        return self.avg, self.live


@torch.no_grad()
def flatten_parameters(tensors: Iterable[Tensor]) -> int:
    """Lay tensors out back to back in one contiguous buffer per (device, dtype), values unchanged.

    Each tensor keeps its identity (a ``Parameter`` stays the same object, so optimizers, module
    attributes and hooks still hold it); only its storage (``tensor.data``) becomes a view into
    the shared buffer, as in apex's or FSDP's flat parameters. Each tensor starts on a 64-byte
    boundary (zero padding between them), as separately allocated tensors do, so that matrix
    kernels round exactly as before: training is bit for bit the same. A ``WeightAverage(...,
    flat=True)`` built over tensors laid out this way, in the same order, updates with one sum and
    one lerp per buffer instead of a kernel per tensor (DDPG's 12 tensors on a 2-core CPU: 78 -> 49
    us guarded, 38 -> 32 us bare; ``benchmarks/bench_update.py``). Opt-in: it rewrites the user's
    parameter storage, for about 0.3% of a DDPG run's time. Tensors that are not contiguous,
    or are views of a larger storage (already flattened, tied), stay where they are. Returns how
    many tensors were moved.

    As with any view, ``torch.save`` or pickle of one such tensor alone writes the whole buffer;
    a whole ``state_dict`` (SB3's ``save``) stores the buffer once.
    """
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        whole = t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
        if t.is_contiguous() and whole and t.numel():
            groups.setdefault((t.device, t.dtype), []).append(t)
    moved = 0
    for group in groups.values():
        if len(group) < 2:
            continue
        offsets, span = _aligned_offsets(group)
        flat = torch.zeros(span, dtype=group[0].dtype, device=group[0].device)
        for o, t in zip(offsets, group):
            flat[o : o + t.numel()].copy_(t.detach().reshape(-1))
            t.data = flat[o : o + t.numel()].view_as(t)
        moved += len(group)
    return moved
