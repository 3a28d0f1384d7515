"""End-to-end training throughput with and without SWACallback (snapshot every update, no evaluation),
with the NaN guard off (``skip_nonfinite=False``), with K = 5 averages on the same trajectory, with
SWAG (``swag_rank=20``), acting with the average (``ActWithAverage``) and resetting to it every
1,000 updates (``ResetToAverage``).

    python benchmarks/bench_e2e.py [--reps 3] [--json out.json]

A2C CnnPolicy on ALE/Breakout-v5 (16 envs, n_steps 5, Adam) and DDPG on Hopper-v5 ([400, 300],
batch 256). Every arm is built once; their timed ``learn()`` chunks are interleaved (A B B A ...)
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
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.noise import NormalActionNoise

from agents.config import load_config
from agents.envs import make_env
from rl_swa import ActWithAverage, ResetToAverage, SWACallback


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


def _timed(callbacks, spent: list[float]) -> None:
    """Wrap the callbacks' per-step and per-update methods to accumulate the time spent inside them."""
    for callback in callbacks:
        for method in ("_after_update", "_on_step", "_on_rollout_end", "_on_rollout_start"):
            inner = getattr(callback, method, None)
            if inner is None:
                continue

            def wrapper(*args, _inner=inner, **kwargs):
                t = time.perf_counter()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - t

            setattr(callback, method, wrapper)


def _with(part):
    """An SWACallback with a part after it: (what learn() takes, the callbacks to time)."""
    swa = SWACallback(start=0, update_every=1)
    other = part(swa)
    return CallbackList([swa, other]), [swa, other]


ARMS = {  # name -> () -> (callback for learn(), callbacks whose hooks are timed)
    "plain": lambda: (None, []),
    "swa": lambda: (c := SWACallback(start=0, update_every=1), [c]),
    "swa_bare": lambda: (c := SWACallback(start=0, update_every=1, skip_nonfinite=False), [c]),
    "swa_k5": lambda: (
        c := SWACallback(start=0, update_every=1, averages=["swa@1", "swa@0.5", "ema@0.999", "ema@0.9999"]),
        [c],
    ),
    "swag_20": lambda: (c := SWACallback(start=0, update_every=1, swag_rank=20), [c]),
    "act_avg": lambda: _with(ActWithAverage),
    "reset_avg": lambda: _with(lambda swa: ResetToAverage(swa, every=1000)),
}


def bench(name, factory, reps):
    arms = {}
    for arm, make in ARMS.items():
        model, chunk = factory()
        callback, timed = make()
        model.learn(chunk, callback=callback)  # warm-up (fills DDPG's learning_starts)
        arms[arm] = (model, callback, timed)
    rates = {arm: [] for arm in ARMS}
    inside = {arm: [0.0] for arm in ARMS}
    wall = {arm: 0.0 for arm in ARMS}
    for arm, (_, _, timed) in arms.items():
        _timed(timed, inside[arm])
    order = list(ARMS)
    for rep in range(reps):
        for arm in order if rep % 2 == 0 else order[::-1]:
            model, callback, _ = arms[arm]
            t = time.perf_counter()
            model.learn(chunk, callback=callback, reset_num_timesteps=False)
            elapsed = time.perf_counter() - t
            wall[arm] += elapsed
            rates[arm].append(chunk / elapsed)
    plain = np.array(rates["plain"])
    result = {"bench": name, "chunk_steps": chunk, "plain_steps_per_s": rates["plain"], "arms": {}}
    for arm in order[1:]:
        ratios = np.array(rates[arm]) / plain
        result["arms"][arm] = {
            "steps_per_s": rates[arm],
            "ratio_mean": float(ratios.mean()),
            "ratio_min": float(ratios.min()),
            "ratio_max": float(ratios.max()),
            # time inside the callbacks' hooks / wall time of the timed chunks: the direct cost, free of run-to-run noise
            "callback_share": inside[arm][0] / wall[arm],
        }
    result["snapshots"] = arms["swa"][1].average.n_averaged
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [bench("A2C Breakout 16 envs", a2c_breakout, args.reps), bench("DDPG Hopper-v5", ddpg_hopper, args.reps)]
    for r in rows:
        plain = np.mean(r["plain_steps_per_s"])
        print(f"{r['bench']}: plain {plain:.1f} steps/s, {args.reps} paired chunks of {r['chunk_steps']} steps")
        for arm, m in r["arms"].items():
            print(
                f"  {arm:<10} ratio {m['ratio_mean']:.3f} (min {m['ratio_min']:.3f}, max {m['ratio_max']:.3f}); "
                f"time inside the callbacks {100 * m['callback_share']:.2f}% of the run"
            )
    if args.json:
        write_json(args.json, {"reps": args.reps, "rows": rows})


if __name__ == "__main__":
    main()
