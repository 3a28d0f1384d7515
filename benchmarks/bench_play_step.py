"""What one agent step of scored episodes costs against one training step, by batch size (Atari A2C).

    python benchmarks/bench_play_step.py [--env ALE/Breakout-v5] [--json out.json]

``rl-swa select`` plays each candidate's episodes of a round in one VecEnv: the first rounds of
the race give one episode to each of ~33 candidates (batch 1), the confirmation 50 episodes to
each of two (batch 50). A step is ``predict`` (sampled actions, as the Atari configs evaluate)
plus the env step, in an env left to auto-reset; a training step is A2C's (the config's 16 envs,
``n_steps`` 5), from ``learn`` on the same machine in the same process. The selection's share of
a run's training time is about sum(episodes x episode length x ratio at its batch) / timesteps.

The last two rows size one lever for the batch-1 rounds: the forward pass of ``--candidates``
policies on one observation each, one ``predict`` at a time (as ``select`` plays them) against one
``torch.func.vmap`` pass over their stacked weights (not used by ``select``; env steps not included).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from _machine import write_json
from stable_baselines3 import A2C
from torch.func import functional_call, stack_module_state, vmap

from agents.config import load_config
from agents.envs import make_env

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="ALE/Breakout-v5")
    p.add_argument("--train-steps", type=int, default=16_000)
    p.add_argument("--candidates", type=int, default=33)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(ROOT / "configs/atari/a2c.yaml")
    model = A2C("CnnPolicy", make_env(cfg, args.env, cfg.n_envs, 0, True), seed=0, device="cpu", **cfg.hyperparams)
    model.learn(1_600)  # warm-up
    start = time.perf_counter()
    model.learn(args.train_steps, reset_num_timesteps=False)
    train_ms = (time.perf_counter() - start) * 1e3 / args.train_steps
    rows = [{"what": "training step", "ms": round(train_ms, 3)}]
    print(rows[0])
    for n in (1, 2, 8, 16, 50):
        env = make_env(cfg, args.env, n, 100, False)
        obs, steps = env.reset(), max(200, 3_200 // n)
        start = time.perf_counter()
        for _ in range(steps):
            actions, _ = model.policy.predict(obs, deterministic=False)
            obs, *_ = env.step(actions)
        ms = (time.perf_counter() - start) * 1e3 / (steps * n)
        env.close()
        rows.append({"what": f"played step, batch {n}", "ms": round(ms, 3), "ratio_to_training": round(ms / train_ms, 2)})
        print(rows[-1])
    rows += forward_rows(model, make_env(cfg, args.env, 1, 100, False), args.candidates, train_ms)
    if args.json:
        write_json(args.json, {"env": args.env, "rows": rows})


class _Logits(torch.nn.Module):
    """The actor's logits of an SB3 ActorCriticPolicy, as one module for ``functional_call``."""

    def __init__(self, policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        p = self.policy
        return p.action_net(p.mlp_extractor.forward_actor(p.extract_features(obs, p.pi_features_extractor)))


def forward_rows(model, env, k: int, train_ms: float, reps: int = 30) -> list[dict]:
    """ms per candidate of a batch-1 forward pass: k ``predict`` calls against one vmapped pass."""
    obs = env.reset()
    env.close()
    policies = [copy.deepcopy(model.policy) for _ in range(k)]
    start = time.perf_counter()
    for _ in range(reps):
        for policy in policies:
            policy.predict(obs, deterministic=False)
    one_ms = (time.perf_counter() - start) * 1e3 / (reps * k)
    params, buffers = stack_module_state([_Logits(q) for q in policies])
    base = _Logits(copy.deepcopy(model.policy))
    batch = model.policy.obs_to_tensor(obs)[0].float().expand(k, -1, -1, -1).unsqueeze(1)  # k x (1, C, H, W)
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))
    with torch.no_grad():
        forward(params, buffers, batch)  # warm-up
        start = time.perf_counter()
        for _ in range(reps):
            forward(params, buffers, batch).argmax(-1)
    vmap_ms = (time.perf_counter() - start) * 1e3 / (reps * k)
    rows = [
        {
            "what": f"forward, batch 1, {k} candidates one at a time (predict)",
            "ms": round(one_ms, 3),
            "ratio_to_training": round(one_ms / train_ms, 2),
        },
        {
            "what": f"forward, batch 1, {k} candidates in one vmap pass",
            "ms": round(vmap_ms, 3),
            "ratio_to_training": round(vmap_ms / train_ms, 2),
        },
    ]
    for row in rows:
        print(row)
    return rows


if __name__ == "__main__":
    main()
