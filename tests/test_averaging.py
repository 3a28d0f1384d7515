import contextlib
import pickle

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import rl_swa.guard as guard
import rl_swa.layout as layout
from rl_swa import WeightAverage, flatten_parameters, update_batch_norm
from rl_swa.averaging import all_finite


def _net(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)


def _walk(net, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        yield


def _rel_err(ours, ref):
    return max(
        float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-30)) for a, b in zip(ours, ref)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_swa_matches_averaged_model(dtype):
    net = _net(dtype)
    ref, avg = AveragedModel(net), WeightAverage(net)
    for _ in _walk(net, 50):
        ref.update_parameters(net)
        avg.update()
    assert avg.n_averaged == 50 and isinstance(avg.n_averaged, int)
    assert _rel_err(avg.averages.values(), ref.module.parameters()) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ema_matches_averaged_model(dtype):
    net = _net(dtype)
    ref = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    avg = WeightAverage(net, mode="ema", decay=0.9)
    for _ in _walk(net, 40):
        ref.update_parameters(net)
        avg.update()
    assert _rel_err(avg.averages.values(), ref.module.parameters()) < 1e-6


def test_swa_equals_hand_computed_mean():
    net = _net(torch.float64)
    snaps = []
    avg = WeightAverage(list(net.parameters()))
    for _ in _walk(net, 7):
        snaps.append([p.detach().clone() for p in net.parameters()])
        avg.update()
    for i, a in enumerate(avg.averages.values()):
        expected = torch.stack([s[i] for s in snaps]).mean(0)
        torch.testing.assert_close(a, expected, rtol=1e-12, atol=1e-12)


def test_ema_warmup_starts_with_short_memory():
    net = _net()
    plain = WeightAverage(net, mode="ema", decay=0.999)
    warm = WeightAverage(net, mode="ema", decay=0.999, warmup=True)
    for _ in _walk(net, 5):
        plain.update()
        warm.update()
    live = [p.detach() for p in net.parameters()]

    def gap(avg):
        return sum(float((a - p).norm()) for a, p in zip(avg.averages.values(), live))

    assert gap(warm) < 0.5 * gap(plain)


def test_swapped_restores_live_weights_bit_for_bit():
    net = _net()
    avg = WeightAverage(net)
    for _ in _walk(net, 3):
        avg.update()
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(4, 5)
    with avg.swapped():
        for p, a in zip(net.parameters(), avg.averages.values()):
            assert torch.equal(p, a)
        out_avg = net(x)
    for p, b in zip(net.parameters(), before):
        assert torch.equal(p, b)
    assert not torch.allclose(out_avg, net(x))


def test_swapped_restores_after_exception():
    net = _net()
    avg = WeightAverage(net)
    avg.update()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(KeyError):
        with avg.swapped():
            raise KeyError("boom")
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before))


def test_nonfinite_snapshot_is_skipped_and_counted():
    net = _net()
    avg = WeightAverage(net)
    for _ in _walk(net, 4):
        avg.update()
    clean = [a.clone() for a in avg.averages.values()]
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
        net[2].bias[1] = float("inf")
    with pytest.warns(RuntimeWarning, match="NaN/Inf"):
        avg.update()
    assert avg.n_skipped == 1 and avg.n_averaged == 4 and avg.n_updates == 5
    for a, c in zip(avg.averages.values(), clean):
        assert torch.equal(a, c)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_accelerator_path_matches_host_path_and_skips(monkeypatch, flat, fused):
    # The accelerator path (device-side guard, no host branch) runs on CPU tensors when told to:
    # torch.where in bounded chunks (the default), or through the fused kernel (opt-in).
    monkeypatch.setattr(guard, "WHERE_CHUNK_BYTES", 64)  # several chunks even for this small net
    calls = []
    kernel = torch._fused_sgd_
    monkeypatch.setattr(torch, "_fused_sgd_", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    net = _net()
    if flat:
        flatten_parameters(net.parameters())
    host, device = WeightAverage(net, flat=flat), WeightAverage(net, flat=flat, fused=fused)
    device.on_host = False
    ((avg, live),) = [g.pairs() for g in device._groups]
    assert len(avg) == (1 if flat else 4)
    pieces = guard.chunks(avg, live)
    assert len(pieces) > 1 and all(sum(a.numel() * 4 for a in piece) <= 64 or len(piece) == 1 for piece, _ in pieces)
    for i, _ in enumerate(_walk(net, 6)):
        if i == 3:
            with torch.no_grad():
                net[2].bias[0] = float("nan")
        before = [a.clone() for a in device.averages.values()]
        live_before = [p.detach().clone() for p in net.parameters()]
        with pytest.warns(RuntimeWarning) if i == 3 else contextlib.nullcontext():
            host.update()
        device.update()
        for p, b in zip(net.parameters(), live_before):  # the live weights are only read
            torch.testing.assert_close(p.detach(), b, rtol=0, atol=0, equal_nan=True)
        if i == 3:  # the skipped snapshot left every average bit for bit as it was
            assert all(torch.equal(a, b) for a, b in zip(device.averages.values(), before))
            with torch.no_grad():
                net[2].bias[0] = 0.0
        if i == 0:  # the first snapshot is a copy, bit for bit, on either path
            assert all(torch.equal(a, p) for a, p in zip(device.averages.values(), net.parameters()))
    assert device.n_skipped == host.n_skipped == 1 and device.n_averaged == host.n_averaged == 5
    assert len(calls) == (6 if fused else 0) and device._fused is fused  # one kernel per update, no fallback
    # torch.where + lerp_ round as the host's lerp_; the fused kernel computes the step in one
    # expression (p - lr * g) and may differ from it in the last bit
    tol = {"rtol": 2e-7, "atol": 2e-7} if fused else {"rtol": 0, "atol": 0}
    for a, b in zip(host.averages.values(), device.averages.values()):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_accelerator_path_in_every_dtype(dtype, fused):
    # The fused kernel only gets the dtypes it computes right (torch 2.13's CPU kernel leaves
    # reduced-precision tensors of 16+ elements unchanged); the others take torch.where.
    net = nn.Sequential(nn.Linear(40, 24), nn.Linear(24, 3)).to(dtype)
    host, device = WeightAverage(net), WeightAverage(net, fused=fused)
    device.on_host = False
    for _ in _walk(net, 5):
        host.update()
        device.update()
    # the accelerator path casts the weight to the tensors' dtype (3 significant digits in bfloat16)
    tol = {torch.float32: 2e-7, torch.float64: 1e-15, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    for a, b in zip(host.averages.values(), device.averages.values()):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
        assert not torch.equal(b, torch.zeros_like(b))


def test_accelerator_path_falls_back_when_the_fused_kernel_is_missing(monkeypatch):
    net = _net()
    device = WeightAverage(net, fused=True)
    device.on_host = False

    def missing(*args, **kwargs):
        raise NotImplementedError("no fused SGD kernel for this backend")

    monkeypatch.setattr(torch, "_fused_sgd_", missing)
    host = WeightAverage(net)
    for _ in _walk(net, 3):
        host.update()
        device.update()
    assert device._fused is False and device.n_averaged == 3
    for a, b in zip(host.averages.values(), device.averages.values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_flatten_keeps_values_identity_and_training_and_takes_the_one_buffer_path():
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    assert flatten_parameters(params) == 4
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]  # same Parameter objects
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert flatten_parameters(params) == 0  # already laid out: left alone
    flat, ref = WeightAverage(net, flat=True), WeightAverage([p.detach().clone() for p in params])
    assert len(WeightAverage(net)._groups[0].pairs()[1]) == 4  # the default: one tensor each
    ((avg, live),) = [g.pairs() for g in flat._groups]
    assert len(avg) == len(live) == 1 and live[0].numel() == layout._aligned_offsets(params)[0][-1] + params[-1].numel()
    assert all(p.data_ptr() % layout.ALIGN_BYTES == 0 for p in params)  # as separately allocated tensors
    x = torch.randn(64, 5)
    for _ in range(5):  # the optimizer trains the flattened parameters in place
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
        flat.update()
        for r, p in zip(ref._live, params):
            r.copy_(p.detach())
        ref.update()
    assert not torch.equal(params[0], before[0])
    for a, b in zip(flat.averages.values(), ref.averages.values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        params[2][0, 0] = float("nan")
    with pytest.warns(RuntimeWarning):
        flat.update()
    assert flat.n_skipped == 1 and all(torch.isfinite(a).all() for a in flat.averages.values())


def test_moved_parameter_falls_back_instead_of_reading_stale_memory():
    net = _net()
    flatten_parameters(net.parameters())
    avg = WeightAverage(net, flat=True)
    avg.update()
    first = {n: t.clone() for n, t in avg.averages.items()}
    net[0].weight.data = torch.full_like(net[0].weight, 7.0)  # moved out of the flat buffer
    avg.update()
    ((pair_avg, _),) = [g.pairs() for g in avg._groups]
    assert len(pair_avg) == 4  # per-tensor path now
    torch.testing.assert_close(avg.averages["0.weight"], (first["0.weight"] + 7.0) / 2)
    torch.testing.assert_close(avg.averages["2.bias"], (first["2.bias"] + net[2].bias.detach()) / 2)


def test_shared_finiteness_check_gives_the_same_averages():
    net = _net()
    a, b = WeightAverage(net), WeightAverage(net, mode="ema", decay=0.9)
    c, d = WeightAverage(net), WeightAverage(net, mode="ema", decay=0.9)
    for i, _ in enumerate(_walk(net, 5)):
        if i == 2:
            with torch.no_grad():
                net[0].bias[0] = float("inf")
        ok = a.snapshot_finite()
        assert ok is (i != 2)
        with pytest.warns(RuntimeWarning) if i == 2 else contextlib.nullcontext():
            a.update(ok), b.update(ok), c.update(), d.update()
        if i == 2:
            with torch.no_grad():
                net[0].bias[0] = 0.0
    assert a.n_skipped == b.n_skipped == c.n_skipped == 1
    for x, y in zip(
        list(a.averages.values()) + list(b.averages.values()), list(c.averages.values()) + list(d.averages.values())
    ):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_all_finite_sees_a_nan_anywhere_in_mixed_layouts():
    net, other = _net(), _net()
    flatten_parameters(net.parameters())  # one buffer, interleaved below with separate tensors
    mixed = [p for pair in zip(net.parameters(), other.parameters()) for p in pair]
    assert len(layout._runs(list(net.parameters()))) == 1 and len(layout._runs(mixed)) == 8
    assert all_finite(mixed)
    for t in mixed:
        for bad in (float("nan"), float("inf"), float("-inf")):
            with torch.no_grad():
                saved = t.view(-1)[-1].item()
                t.view(-1)[-1] = bad
            assert not all_finite(mixed)
            with torch.no_grad():
                t.view(-1)[-1] = saved
    assert all_finite(mixed)


def test_guard_does_not_flag_large_finite_half_precision_weights():
    x = torch.full((100_000,), 1000.0, dtype=torch.float16)  # an fp16 sum would overflow at 65504
    avg = WeightAverage([x])
    avg.update()
    assert avg.n_skipped == 0 and avg.n_averaged == 1
    x[5] = float("-inf")
    with pytest.warns(RuntimeWarning):
        avg.update()
    assert avg.n_skipped == 1


def test_copy_to_and_state_dict_round_trip():
    net = _net()
    avg = WeightAverage(net, mode="ema", decay=0.5)
    for _ in _walk(net, 5):
        avg.update()
    state = pickle.loads(pickle.dumps(avg.state_dict()))
    other = WeightAverage(_net(), mode="ema", decay=0.5)
    other.load_state_dict(state)
    assert other.n_averaged == 5 and other.n_updates == 5
    target = _net()
    other.copy_to(target)
    for p, a in zip(target.parameters(), avg.averages.values()):
        assert torch.equal(p, a)
    # the next update continues identically
    for _ in _walk(net, 1, seed=9):
        avg.update()
    other_src = WeightAverage(net, mode="ema", decay=0.5)
    other_src.load_state_dict(state)
    other_src.update()
    for a, b in zip(avg.averages.values(), other_src.averages.values()):
        assert torch.equal(a, b)


def test_load_state_dict_rejects_mismatch():
    avg = WeightAverage(_net())
    avg.update()
    state = avg.state_dict()
    with pytest.raises(ValueError, match="holds a 'swa' average"):
        WeightAverage(_net(), mode="ema").load_state_dict(state)
    small = WeightAverage(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="do not match"):
        small.load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        avg.load_state_dict({**state, "version": 99})


@pytest.mark.parametrize(
    "kwargs, field",
    [({"mode": "swag"}, "mode"), ({"mode": "ema", "decay": 1.5}, "decay"), ({"buffers": "mean"}, "buffers")],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WeightAverage(_net(), **kwargs)


def test_no_snapshot_yet_is_an_error():
    avg = WeightAverage(_net())
    with pytest.raises(RuntimeError, match="no snapshot"):
        with avg.swapped():
            pass


def test_batchnorm_buffers_copied_or_averaged_and_recomputed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    copy = WeightAverage(net, buffers="copy")
    mean = WeightAverage(net, buffers="average")
    stats = []
    for i in range(3):
        net.train()
        net(torch.randn(64, 3) * (i + 1))
        stats.append(net[1].running_var.clone())
        copy.update()
        mean.update()
    assert torch.equal(copy.averages["1.running_var"], stats[-1])
    torch.testing.assert_close(mean.averages["1.running_var"], torch.stack(stats).mean(0))
    assert "1.num_batches_tracked" in copy.averages  # integer buffers are copied, never averaged
    data = torch.randn(512, 3) * 2 + 1
    with copy.swapped():
        update_batch_norm(net, data, batch_size=128)
        # momentum=None: the running variance is the mean of the per-chunk (unbiased) variances
        expected = torch.stack([net[0](c).var(0, unbiased=True) for c in data.split(128)]).mean(0)
        torch.testing.assert_close(net[1].running_var, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("flat, fused", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("kwargs", [{}, {"mode": "ema", "decay": 0.9}, {"mode": "power", "gamma": 6.9}])
def test_cuda_update_makes_no_host_device_sync(kwargs, flat, fused):
    net = _net().cuda()
    if flat:
        flatten_parameters(net.parameters())
    avg = WeightAverage(net, flat=flat, fused=fused, **kwargs)
    avg.update()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(10):
            avg.update(avg.snapshot_finite() if i % 2 else None)  # a shared check stays on the device too
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(a.is_cuda for a in avg.averages.values())
    assert avg._fused is fused  # the fused kernel ran (a sync inside it would have raised and fallen back)
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    avg.update()
    assert avg.n_skipped == 1 and avg.n_averaged == 11
    assert all(torch.isfinite(a).all() for a in avg.averages.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("flat", [False, True])
def test_cuda_fused_guarded_update_allocates_nothing_beyond_the_averages(flat):
    # 16 MiB of weights: a transient copy of them (torch.where's sources) would show up here
    net = nn.Sequential(nn.Linear(1024, 2048), nn.Linear(2048, 1024)).cuda()
    if flat:
        flatten_parameters(net.parameters())
    avg = WeightAverage(net, flat=flat, fused=True)
    avg.update()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        avg.update()
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base < 1 << 20  # scalars and the sum's workspace
    assert avg._fused and avg.n_averaged == 4
