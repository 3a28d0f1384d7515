"""The averaging engine: equal (SWA) and exponential (EMA) averages of a set of tensors.

This module imports torch only. It decides *how* to average; when to take a snapshot is the
caller's business (see :class:`rl_swa.SWACallback`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn

from rl_swa.guard import guarded_lerp_
from rl_swa.layout import _Group, _host_finite, _sums, all_finite, flatten_parameters  # noqa: F401 (public here too)
from rl_swa.rules import MODES, make_rule  # noqa: F401

STATE_VERSION = 1
BUFFER_POLICIES = ("copy", "average", "ignore")


def _named_tensors(source, buffers: str) -> tuple[dict[str, Tensor], dict[str, Tensor], nn.Module | None]:
    """Split ``source`` into named parameters and named buffers to track."""
    if isinstance(source, nn.Module):
        params = {name: p for name, p in source.named_parameters()}
        bufs = {} if buffers == "ignore" else {name: b for name, b in source.named_buffers()}
        return params, bufs, source
    if isinstance(source, Mapping):
        params = dict(source)
    elif isinstance(source, Iterable):
        params = {str(i): t for i, t in enumerate(source)}
    else:
        raise ValueError(
            f"source of type {type(source).__name__} is not supported; "
            "pass an nn.Module, a mapping of name -> tensor, or an iterable of tensors"
        )
    for name, t in params.items():
        if not isinstance(t, Tensor):
            raise ValueError(f"source[{name!r}] is a {type(t).__name__}, not a torch.Tensor")
    return params, {}, None


class WeightAverage:
    """Keeps an average of tracked live tensors, on their own device and in their own dtype.

    ``mode="swa"`` is the equal average of Izmailov et al. (the first snapshot is copied, then
    ``w += (x - w) / (n + 1)``); ``mode="ema"`` an exponential moving average with ``decay``
    (optionally warmed up as in timm's ModelEmaV3); ``mode="power"`` the power-function EMA of
    Karras et al. (2024) with exponent ``gamma``, whose saved states feed post-hoc EMA
    (:mod:`rl_swa.posthoc`). The update is one multi-tensor ``torch._foreach_lerp_`` per
    (device, dtype) group and the snapshot counter is a host int, so an update never synchronizes
    host and device. Opt-in, ``flat=True``: the averages lie in one buffer per group and, when the
    live tensors lie back to back the same way (:func:`flatten_parameters`), the update is a single
    ``lerp_`` over the buffer.

    A snapshot whose live tensors hold NaN or Inf is skipped (counted in :attr:`n_skipped`, with a
    warning) so that a diverged step never poisons the average. The check is one sum per tensor
    or flat buffer (NaN and Inf propagate into a sum), one more read of the weights; averages over
    the same tensors can share it (:meth:`snapshot_finite`). On the CPU it feeds a host branch.
    On an accelerator the check stays on the device (:mod:`rl_swa.guard`: ``torch.where`` in bounded
    chunks, or opt-in, ``fused=True``, torch's fused SGD kernel as a masked lerp), the accepted-snapshot
    counter lives on the device and reading :attr:`n_averaged` or :attr:`n_skipped` synchronizes once; pass
    ``skip_nonfinite=False`` for the bare update.

    :param source: an ``nn.Module`` (its parameters, and buffers as ``buffers`` says), a mapping
        of name -> tensor, or an iterable of tensors. The tensors are tracked, not copied.
    :param mode: ``"swa"`` (equal average) or ``"ema"``.
    :param decay: EMA decay in (0, 1); used with ``mode="ema"`` only.
    :param gamma: exponent of ``mode="power"`` (>= 0; 0 is the equal average).
    :param warmup: EMA only: ramp the decay up as ``1 - (1 + n) ** (-2/3)`` until it reaches ``decay``.
    :param buffers: for a module's buffers (BatchNorm running statistics): ``"copy"`` them from
        the live module at each snapshot (torch's ``AveragedModel`` default), ``"average"`` the
        floating-point ones like parameters, or ``"ignore"`` them. Integer buffers are always copied.
    :param skip_nonfinite: skip snapshots holding NaN/Inf (see above).
    :param flat: opt-in: the averages in one buffer per (device, dtype) (see above).
    :param fused: opt-in: the accelerator guard through the fused SGD kernel (see above).
    """

    def __init__(
        self,
        source: nn.Module | Mapping[str, Tensor] | Iterable[Tensor],
        mode: str = "swa",
        decay: float = 0.999,
        warmup: bool = False,
        buffers: str = "copy",
        skip_nonfinite: bool = True,
        gamma: float | None = None,
        flat: bool = False,
        fused: bool = False,
    ):
        if buffers not in BUFFER_POLICIES:
            raise ValueError(f"buffers={buffers!r} is not supported; allowed: {', '.join(BUFFER_POLICIES)}")
        self._rule = make_rule(mode, decay, warmup, gamma)
        self.buffers = buffers
        self.skip_nonfinite = bool(skip_nonfinite)
        params, bufs, self.module = _named_tensors(source, buffers)
        if not params:
            raise ValueError("source holds no tensors to average")
        averaged = dict(params)
        copied: dict[str, Tensor] = {}
        for name, b in bufs.items():
            (averaged if buffers == "average" and b.is_floating_point() else copied)[name] = b
        for name, t in averaged.items():
            if not t.is_floating_point():
                raise ValueError(f"tensor {name!r} has dtype {t.dtype}; only floating-point tensors can be averaged")
        self.names = list(averaged)
        # The tracked objects themselves (parameters included): foreach ops read them under
        # no_grad, and swapped() exchanges their storage.
        self._live = list(averaged.values())
        self._groups, self._avg = self._group(self._live, bool(flat))
        self.copied_names = list(copied)
        self._live_copied = list(copied.values())
        self._avg_copied = [torch.zeros_like(t) for t in self._live_copied]
        self.on_host = all(t.device.type == "cpu" for t in self._live)
        self.n_updates = 0  # update() calls, host int
        self._n_host = 0  # accepted snapshots (host path)
        self._skipped_host = 0
        device = self._live[0].device
        self._n_dev = torch.zeros((), dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)
        self._skipped_dev = torch.zeros((), dtype=torch.int64, device=device)
        self._warned = 0
        self._last: tuple = (False, 0)
        self._fused = bool(fused)  # accelerator guard through the fused kernel, while this torch offers it

    @staticmethod
    def _group(live: list[Tensor], flat: bool) -> tuple[list[_Group], list[Tensor]]:
        """Groups by (device, dtype), and the averages in the order of ``live``."""
        where: dict[tuple, list[int]] = {}
        for i, x in enumerate(live):
            where.setdefault((x.device, x.dtype), []).append(i)
        groups, avg = [], [None] * len(live)
        for index in where.values():
            group = _Group([live[i] for i in index], flat)
            groups.append(group)
            for i, a in zip(index, group.avg):
                avg[i] = a
        return groups, avg

    # ------------------------------------------------------------------ properties
    @property
    def mode(self) -> str:
        return self._rule.name

    @property
    def n_averaged(self) -> int:
        """Snapshots in the average (a host int; on an accelerator with the guard on, reading it syncs once)."""
        if self.on_host or not self.skip_nonfinite:
            return self._n_host
        return self.n_updates - self.n_skipped

    @property
    def n_skipped(self) -> int:
        """Snapshots skipped because they held NaN/Inf."""
        if self.on_host or not self.skip_nonfinite:
            return self._skipped_host
        return int(self._skipped_dev.item())

    @property
    def averages(self) -> dict[str, Tensor]:
        """Name -> averaged tensor (the engine's own storage: do not modify in place)."""
        return dict(zip(self.names + self.copied_names, self._avg + self._avg_copied))

    def __len__(self) -> int:
        return len(self._live)

    def __repr__(self) -> str:
        n_params = sum(t.numel() for t in self._live)
        return f"WeightAverage(mode={self.mode!r}, tensors={len(self)}, numel={n_params}, updates={self.n_updates})"

    # ------------------------------------------------------------------ update
    @torch.no_grad()
    def update(self, finite: bool | Tensor | None = None) -> None:
        """Take a snapshot of the tracked live tensors.

        :param finite: the result of :meth:`snapshot_finite` for this snapshot, when several
            averages track the same tensors: the check (one read of the weights) is then done once,
            not once per average. ``None``: check here (when ``skip_nonfinite``).
        """
        self.n_updates += 1
        if self._live_copied:
            torch._foreach_copy_(self._avg_copied, self._live_copied)
        pairs = [g.pairs() for g in self._groups]
        if self.on_host or not self.skip_nonfinite:
            self._update_host(pairs, finite)
        else:
            self._update_device(pairs, finite)

    def last_snapshot(self) -> tuple[bool | Tensor, int | Tensor]:
        """(whether the last :meth:`update` took its snapshot, snapshots in the average after it), without
        a sync: host values on the CPU path, device tensors on the accelerator path. For parts that
        keep statistics next to an average (:class:`rl_swa.swag.SWAGRecorder`)."""
        if self.n_updates == 0:
            raise RuntimeError("WeightAverage.last_snapshot: no update yet")
        return self._last

    @torch.no_grad()
    def snapshot_finite(self) -> bool | Tensor:
        """Whether the live tensors hold no NaN/Inf: a host bool on the CPU, a device bool tensor on
        an accelerator (no sync). Pass it to :meth:`update` of every average over the same tensors."""
        return self._finite([g.pairs() for g in self._groups])

    def _finite(self, pairs) -> bool | Tensor:
        if self.on_host:  # CPU tensors: the host branch waits for nothing
            return _host_finite([t for _, live in pairs for t in live])
        sums = [torch.stack(_sums(live)).sum() for _, live in pairs]
        total = sums[0] if len(sums) == 1 else torch.stack([t.to(sums[0].device, torch.float64) for t in sums]).sum()
        return total.isfinite()

    def _update_host(self, pairs, finite) -> None:
        ok = not self.skip_nonfinite or bool(self._finite(pairs) if finite is None else finite)
        self._last = (ok, self._n_host + ok)
        if not ok:
            self._skipped_host += 1
            self._warn_skipped()
            return
        weight = self._rule.host_weight(self._n_host)
        for avg, live in pairs:
            if weight == 1.0:
                torch._foreach_copy_(avg, live)
            else:
                torch._foreach_lerp_(avg, live, weight)
        self._n_host += 1

    def _update_device(self, pairs, finite) -> None:
        ok = self._finite(pairs) if finite is None else torch.as_tensor(finite, device=self._n_dev.device)
        okf = ok.to(self._n_dev.dtype)
        weight = okf * self._rule.device_weight(self._n_dev)
        for avg, live in pairs:
            self._fused = guarded_lerp_(avg, live, weight, ok, self._fused)
        self._n_dev += okf
        self._skipped_dev += (~ok).to(self._skipped_dev.dtype)
        self._last = (ok, self._n_dev)

    def _warn_skipped(self) -> None:
        if self._warned < 5:
            self._warned += 1
            warnings.warn(
                f"WeightAverage: snapshot {self.n_updates} holds NaN/Inf and was skipped "
                f"({self._skipped_host} skipped so far); the average keeps its earlier snapshots",
                RuntimeWarning,
                stacklevel=5,  # the caller of update() (through no_grad and _update_host)
            )

    def reset(self) -> None:
        """Forget every snapshot (the next update copies)."""
        self.n_updates = self._n_host = self._skipped_host = 0
        torch._foreach_zero_(self._avg)  # the accelerator path's first lerp (weight 1) is then exact
        self._n_dev.zero_()
        self._skipped_dev.zero_()

    # ------------------------------------------------------------------ using the average
    def _require_snapshot(self) -> None:
        if self.n_updates == 0 or (self.on_host and self._n_host == 0):
            raise RuntimeError("WeightAverage holds no snapshot yet; call update() first")

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Within the block the tracked tensors hold the averages; on exit the live values are back, bit for bit.

        The swap exchanges storage (``tensor.data``), so it moves no memory and cannot round.
        Do not train inside the block: an optimizer step would then write into the average.
        """
        self._require_snapshot()
        tracked = self._live + self._live_copied
        averages = self._avg + self._avg_copied
        saved = [t.data for t in tracked]
        try:
            for t, a in zip(tracked, averages):
                t.data = a
            yield
        finally:
            for t, s in zip(tracked, saved):
                t.data = s

    @torch.no_grad()
    def copy_to(self, target: nn.Module | Mapping[str, Tensor] | list[Tensor]) -> None:
        """Write the averages into a structurally identical module (matched by name) or tensor list (by order)."""
        self._require_snapshot()
        if isinstance(target, nn.Module):
            named = dict(target.named_parameters())
            named.update(dict(target.named_buffers()))
            missing = [n for n in self.names + self.copied_names if n not in named]
            if missing:
                raise ValueError(f"target module has no tensors named {missing[:5]}")
            dest = [named[n] for n in self.names + self.copied_names]
        elif isinstance(target, Mapping):
            dest = [target[n] for n in self.names + self.copied_names]
        else:
            dest = list(target)
        src = self._avg + self._avg_copied
        if len(dest) != len(src):
            raise ValueError(f"target holds {len(dest)} tensors, the average {len(src)}")
        for name, d, s in zip(self.names + self.copied_names, dest, src):
            if d.shape != s.shape:
                raise ValueError(f"tensor {name!r}: target shape {tuple(d.shape)} != average shape {tuple(s.shape)}")
        torch._foreach_copy_(dest, src)

    @torch.no_grad()
    def distance(self) -> float:
        """L2 distance between the live tensors and the averages (synchronizes: for logging)."""
        total = 0.0
        for group in self._groups:
            avg, live = group.pairs()
            diffs = torch._foreach_sub(live, avg)
            total += float(torch.stack(torch._foreach_norm(diffs)).double().square().sum())
        return math.sqrt(total)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "mode": self.mode,
            "rule": self._rule.config(),
            "n_updates": self.n_updates,
            "n_averaged": self.n_averaged,
            "n_skipped": self.n_skipped,
            "averages": {n: t.detach().clone() for n, t in self.averages.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping) -> None:
        if not isinstance(state, Mapping) or "version" not in state:
            raise ValueError("not a WeightAverage state dict (no 'version' key)")
        if state["version"] != STATE_VERSION:
            raise ValueError(f"WeightAverage state version {state['version']!r} is not supported (expected {STATE_VERSION})")
        if state["mode"] != self.mode:
            raise ValueError(f"state holds a {state['mode']!r} average, this WeightAverage is {self.mode!r}")
        if state.get("rule", {}) != self._rule.config() and self.mode == "power":
            raise ValueError(
                f"state holds a power average with {state.get('rule')}, this WeightAverage has {self._rule.config()}"
            )
        saved = state["averages"]
        expected = self.names + self.copied_names
        if sorted(saved) != sorted(expected):
            missing = sorted(set(expected) - set(saved))
            extra = sorted(set(saved) - set(expected))
            raise ValueError(f"state tensors do not match: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, dst in zip(expected, self._avg + self._avg_copied):
            if saved[name].shape != dst.shape:
                raise ValueError(f"tensor {name!r}: state shape {tuple(saved[name].shape)} != {tuple(dst.shape)}")
            dst.copy_(saved[name])
        self.n_updates = int(state["n_updates"])
        self._n_host = int(state["n_averaged"])
        self._skipped_host = int(state["n_skipped"])
        self._n_dev.fill_(self._n_host)
        self._skipped_dev.fill_(self._skipped_host)
