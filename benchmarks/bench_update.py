"""Microseconds per averaging update: WeightAverage vs torch's AveragedModel vs the memory floor.

    python benchmarks/bench_update.py [--device cpu|cuda] [--threads 1] [--large] [--json out.json]

Models: the A2C NatureCNN policy (Atari, 1.69M params), the DDPG actor + critic ([400, 300],
Hopper sizes, 253k params) and, with --large, a 29M-parameter MLP (the "25M" class). The floor is one
``torch._foreach_copy_`` of the same tensors (read once, write once); "x bytes" divides by the
floor of the bytes each operation must move (a copy's time per pass times its passes: the bare
lerp makes 3, reading weights and average and writing the average; the guarded update 4, the
NaN/Inf check reading the weights once more). The last rows lay the
model's parameters out in one buffer (``flatten_parameters``, what ``SWACallback(flatten=True)`` does; opt-in)
and time the update and a single ``copy_`` of that buffer (the flat floor). On CUDA each case also
reports the device memory one call allocates beyond what exists before it (peak, MiB).
"""

from __future__ import annotations

import argparse
import platform

import gymnasium as gym
import numpy as np
import torch
from _machine import write_json
from stable_baselines3.common.policies import ActorCriticCnnPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn
from torch.utils.benchmark import Timer

from rl_swa import WeightAverage, flatten_parameters


def nature_cnn() -> nn.Module:
    obs = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    return ActorCriticCnnPolicy(obs, gym.spaces.Discrete(4), lambda _: 7e-4)


class _ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        obs = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
        act = gym.spaces.Box(-1, 1, (3,), np.float32)
        policy = TD3Policy(obs, act, lambda _: 1e-3, net_arch=[400, 300], n_critics=1)
        self.actor, self.critic = policy.actor, policy.critic


def large_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2048, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1024))


def per_param_loop(avg, live, n):
    for a, x in zip(avg, live):
        a.add_(x - a, alpha=1 / (n + 1))


def time_us(fn, device) -> float:
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=1.0).median * 1e6


def bench(name: str, model: nn.Module, device: str) -> list[dict]:
    model = model.to(device)
    params = [p for p in model.parameters()]
    numel = sum(p.numel() for p in params)
    nbytes = sum(p.numel() * p.element_size() for p in params)
    copies = [p.detach().clone() for p in params]
    swa, ema = WeightAverage(model), WeightAverage(model, mode="ema", decay=0.999)
    swa_lean = WeightAverage(model, skip_nonfinite=False)
    ref, ref_multi = AveragedModel(model), AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
    ref_ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    for avg in (swa, ema, swa_lean):
        avg.update()
    for r in (ref, ref_multi, ref_ema):
        r.update_parameters(model)
    cases = {
        "floor: _foreach_copy_": (lambda: torch._foreach_copy_(copies, params), 2),
        "WeightAverage swa": (swa.update, 4),  # the guard's read of the weights + the lerp's 3 passes
        "WeightAverage swa (no NaN guard)": (swa_lean.update, 3),
        "WeightAverage ema": (ema.update, 4),
        "AveragedModel (default)": (lambda: ref.update_parameters(model), 3),
        "AveragedModel (swa multi_avg_fn)": (lambda: ref_multi.update_parameters(model), 3),
        "AveragedModel (ema multi_avg_fn)": (lambda: ref_ema.update_parameters(model), 3),
        "per-parameter loop": (lambda: per_param_loop(copies, params, 10), 3),
    }
    rows = []

    def run(cases):
        with torch.no_grad():
            for case, (fn, passes) in cases.items():
                us = time_us(fn, device)
                row = {"model": name, "params": numel, "case": case, "us": us, "passes": passes}
                row["GB/s"] = passes * nbytes / us / 1e3
                if device == "cuda":
                    row["extra_MiB"] = _extra_mib(fn)
                rows.append(row)

    run(cases)
    rows.append(
        {
            "model": name,
            "params": numel,
            "case": "swap in + out (swapped())",
            "us": _swap_us(swa, device),
            "GB/s": float("nan"),
        }
    )
    # The same tensors laid out back to back (flatten_parameters, SWACallback(flatten=True)): the
    # averages built above would follow the new layout too, so the flat cases get fresh ones.
    flatten_parameters(params)
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    flat_live = params[0].detach().as_strided((numel,), (1,), params[0].storage_offset())
    swa, swa_lean = WeightAverage(model, flat=True), WeightAverage(model, skip_nonfinite=False, flat=True)
    swa.update(), swa_lean.update()
    assert len(swa._groups[0].pairs()[1]) == 1, "flat layout not detected"
    run(
        {
            "flat floor: one copy_": (lambda: flat.copy_(flat_live), 2),
            "WeightAverage swa, flat": (swa.update, 4),
            "WeightAverage swa, flat, no guard": (swa_lean.update, 3),
        }
    )
    floor = rows[0]["us"]
    flat_floor = next(r["us"] for r in rows if r["case"].startswith("flat floor"))
    for row in rows:
        row["x_floor"] = row["us"] / floor
        row["x_flat_floor"] = row["us"] / flat_floor
        # against the floor of the bytes this operation must move: a copy's time per pass x its passes
        row["x_bytes_floor"] = row["us"] / (floor * row["passes"] / 2) if "passes" in row else float("nan")
    return rows


def _extra_mib(fn) -> float:
    """Device memory one call allocates beyond what was allocated before it (peak), in MiB."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _swap_us(avg: WeightAverage, device: str) -> float:
    def swap():
        with avg.swapped():
            pass

    return time_us(swap, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--large", action="store_true", help="also the 25M-parameter MLP")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    models = {"A2C NatureCNN": nature_cnn(), "DDPG actor+critic [400,300]": _ActorCritic()}
    if args.large:
        models["MLP 25M"] = large_mlp()
    rows = []
    for name, model in models.items():
        rows += bench(name, model, args.device)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"device: {args.device} ({device_name}), torch {torch.__version__}, threads {args.threads}")
    extra = args.device == "cuda"  # device memory a call allocates beyond the averages (peak)
    print(
        f"{'model':<30} {'case':<36} {'us/update':>10} {'x floor':>8} {'x bytes':>8} {'x flat':>7} {'GB/s':>7}"
        + (f" {'extra MiB':>9}" if extra else "")
    )
    for r in rows:
        print(
            f"{r['model']:<30} {r['case']:<36} {r['us']:>10.1f} {r['x_floor']:>8.2f} {r['x_bytes_floor']:>8.2f} "
            f"{r['x_flat_floor']:>7.2f} {r['GB/s']:>7.1f}" + (f" {r.get('extra_MiB', float('nan')):>9.2f}" if extra else "")
        )
    if args.json:
        write_json(args.json, {"device": args.device, "device_name": device_name, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
