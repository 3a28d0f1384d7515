"""End-to-end training throughput with and without SWACallback (snapshot every update, no evaluation),
with the NaN guard off (``skip_nonfinite=False``), and with K = 5 averages on the same trajectory.

    python benchmarks/bench_e2e.py [--reps 3] [--json out.json]

A2C CnnPolicy on ALE/Breakout-v5 (16 envs, n_steps 5, Adam) and DDPG on Hopper-v5 ([400, 300],
batch 256). Both arms are built once; their timed ``learn()`` chunks are interleaved (A B B A ...)
so drifts in machine load hit both alike. One torch thread. Chunk-to-chunk noise on a shared
CPU is a few percent, more than the cost being measured, so the script also times the
callback's hooks directly and prints their share of the wall time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _machine import write_json
from stable_baselines3 import A2C, DDPG
from stable_baselines3.common.noise import NormalActionNoise

from agents.config import load_config
from agents.envs import make_env
from rl_swa import SWACallback


def a2c_breakout():
    cfg = load_config("configs/atari/a2c.yaml")
    env = make_env(cfg, "ALE/Breakout-v5", 16, 0, training=True)
    return A2C(
        "CnnPolicy", env, n_steps=5, seed=0, device="cpu", policy_kwargs=dict(optimizer_class=torch.optim.Adam)
    ), 16 * 5 * 60


def ddpg_hopper():
    cfg = load_config("configs/mujoco/ddpg.yaml")
    env = make_env(cfg, "Hopper-v5", 1, 0, training=True)
    noise = NormalActionNoise(np.zeros(3), 0.1 * np.ones(3))
    return DDPG(
        "MlpPolicy",
        env,
        learning_starts=500,
        batch_size=256,
        seed=0,
        device="cpu",
        action_noise=noise,
        policy_kwargs=dict(net_arch=[400, 300]),
    ), 1000


def _timed(callback, spent: list[float]) -> None:
    """Wrap the callback's per-step and per-update methods to accumulate the time spent inside them."""
    for method in ("_after_update", "_on_step", "_on_rollout_end", "_on_rollout_start"):
        inner = getattr(callback, method)

        def wrapper(*args, _inner=inner, **kwargs):
            t = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t

        setattr(callback, method, wrapper)


def bench(name, factory, reps):
    arms = {}
    callbacks = {
        "plain": lambda: None,
        "swa": lambda: SWACallback(start=0, update_every=1),
        "swa_bare": lambda: SWACallback(start=0, update_every=1, skip_nonfinite=False),
        "swa_k5": lambda: SWACallback(start=0, update_every=1, averages=["swa@1", "swa@0.5", "ema@0.999", "ema@0.9999"]),
    }
    for arm, make_callback in callbacks.items():
        model, chunk = factory()
        callback = make_callback()
        model.learn(chunk, callback=callback)  # warm-up (fills DDPG's learning_starts)
        arms[arm] = (model, callback)
    rates = {arm: [] for arm in callbacks}
    inside = {arm: [0.0] for arm in callbacks}
    wall = {arm: 0.0 for arm in callbacks}
    for arm, (_, callback) in arms.items():
        if callback is not None:
            _timed(callback, inside[arm])
    order = list(callbacks)
    for rep in range(reps):
        for arm in order if rep % 2 == 0 else order[::-1]:
            model, callback = arms[arm]
            t = time.perf_counter()
            model.learn(chunk, callback=callback, reset_num_timesteps=False)
            elapsed = time.perf_counter() - t
            wall[arm] += elapsed
            rates[arm].append(chunk / elapsed)
    ratios = np.array(rates["swa"]) / np.array(rates["plain"])
    ratios_k5 = np.array(rates["swa_k5"]) / np.array(rates["plain"])
    ratios_bare = np.array(rates["swa_bare"]) / np.array(rates["plain"])
    n_avg = arms["swa"][1].average.n_averaged
    return {
        "bench": name,
        "plain_steps_per_s": rates["plain"],
        "swa_steps_per_s": rates["swa"],
        "swa_k5_steps_per_s": rates["swa_k5"],
        "ratio_mean": float(ratios.mean()),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
        "ratio_bare_mean": float(ratios_bare.mean()),
        "ratio_bare_min": float(ratios_bare.min()),
        "ratio_bare_max": float(ratios_bare.max()),
        "ratio_k5_mean": float(ratios_k5.mean()),
        "ratio_k5_min": float(ratios_k5.min()),
        "ratio_k5_max": float(ratios_k5.max()),
        "snapshots": n_avg,
        # time inside the callback's hooks / wall time of the timed chunks: the direct cost, free of run-to-run noise
        "callback_share": inside["swa"][0] / wall["swa"],
        "callback_share_k5": inside["swa_k5"][0] / wall["swa_k5"],
        "callback_share_bare": inside["swa_bare"][0] / wall["swa_bare"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [bench("A2C Breakout 16 envs", a2c_breakout, args.reps), bench("DDPG Hopper-v5", ddpg_hopper, args.reps)]
    for r in rows:
        print(
            f"{r['bench']:<22} plain {np.mean(r['plain_steps_per_s']):7.1f} steps/s | "
            f"with SWACallback {np.mean(r['swa_steps_per_s']):7.1f} steps/s | "
            f"ratio {r['ratio_mean']:.3f} (min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f}) "
            f"over {args.reps} paired chunks; {r['snapshots']} snapshots"
        )
        print(
            f"{'':<22} with K=5 averages {np.mean(r['swa_k5_steps_per_s']):7.1f} steps/s | "
            f"ratio {r['ratio_k5_mean']:.3f} (min {r['ratio_k5_min']:.3f}, max {r['ratio_k5_max']:.3f})"
        )
        print(
            f"{'':<22} skip_nonfinite=False: ratio {r['ratio_bare_mean']:.3f} "
            f"(min {r['ratio_bare_min']:.3f}, max {r['ratio_bare_max']:.3f})"
        )
        print(
            f"{'':<22} time inside SWACallback: {100 * r['callback_share']:.2f}% of the run "
            f"(skip_nonfinite=False: {100 * r['callback_share_bare']:.2f}%, K=5: {100 * r['callback_share_k5']:.2f}%)"
        )
    if args.json:
        write_json(args.json, {"reps": args.reps, "rows": rows})


if __name__ == "__main__":
    main()
