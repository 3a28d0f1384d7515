"""Cost of one averaging update inside real training (cache-cold), next to its memory floor.

    python benchmarks/bench_insitu.py [--steps 600] [--reps 2] [--json out.json]

The micro-benchmark (bench_update.py) times updates back to back, with the weights hot in cache.
During training, the forward/backward passes evict them between two updates, so an update reads
from further away. This script trains DDPG on Hopper-v5 ([400, 300], batch 256, one torch thread)
with ``SWACallback(start=0)`` and, in turn, replaces the callback's update by: the default update
(NaN guard on), the bare update (``skip_nonfinite=False``) and the memory floor (one
``_foreach_copy_`` of the same tensors, and with the flat layout one ``copy_`` of the buffer);
each is timed inside ``learn()`` and set against the wall time per env step. ``--flatten``
lays the parameters out in one buffer (opt-in; default: SB3's one tensor per parameter).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import write_json  # noqa: E402
from bench_e2e import ddpg_hopper  # noqa: E402

from rl_swa import SWACallback  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600, help="env steps (= updates) per timed chunk")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument(
        "--flatten",
        action="store_true",
        help="opt-in flat layout (one buffer); default: SB3's layout, one tensor per parameter",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, warmup = ddpg_hopper()
    swa = SWACallback(start=0, flatten=args.flatten)
    model.learn(warmup, callback=swa)
    average = swa.average
    guarded = average.update
    lean = type(average)(dict(zip(average.names, average._live)), skip_nonfinite=False, flat=args.flatten)
    variants = {
        "WeightAverage (NaN guard on)": guarded,
        "WeightAverage (skip_nonfinite=False)": lean.update,
        "floor: _foreach_copy_": lambda: torch._foreach_copy_(lean._avg, lean._live),
    }
    avgs, lives = lean._groups[0].pairs()
    if len(lean._groups) == 1 and len(lives) == 1:  # the flat layout
        variants["floor: one copy_ of the flat buffer"] = lambda: avgs[0].copy_(lives[0])
    rows = {name: {"us_per_update": [], "share_of_step": []} for name in variants}
    for _ in range(args.reps):
        for name, fn in variants.items():
            spent = [0.0]

            def timed(finite=None, fn=fn, spent=spent):  # one average: the callback passes finite=None
                t = time.perf_counter()
                fn()
                spent[0] += time.perf_counter() - t

            average.update = timed
            t = time.perf_counter()
            model.learn(args.steps, callback=swa, reset_num_timesteps=False)
            wall = time.perf_counter() - t
            rows[name]["us_per_update"].append(1e6 * spent[0] / args.steps)
            rows[name]["share_of_step"].append(spent[0] / wall)
    print(f"DDPG Hopper-v5, {args.steps} updates per chunk, {args.reps} chunks per case, one torch thread")
    for name, r in rows.items():
        us, share = sum(r["us_per_update"]) / args.reps, sum(r["share_of_step"]) / args.reps
        print(f"{name:<38} {us:7.1f} us/update in training  = {100 * share:.2f}% of the wall time")
    if args.json:
        write_json(args.json, {"steps": args.steps, "reps": args.reps, "flatten": args.flatten, "rows": rows})


if __name__ == "__main__":
    main()
