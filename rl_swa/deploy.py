"""The policy to deploy: the candidates of one training run, played on seeded episodes, and the choice.

After ``model.learn(..., callback=swa)``::

    policy, table = select_policy(swa, "CartPole-v1", episodes=200)
    policy.predict(obs)

:func:`candidates_of` lists what the callback holds: the final online weights (the default), the
best evaluated online weights (what SB3's ``EvalCallback`` keeps), every average at the end and,
with ``posthoc_points``, the online weights at each saved point, the windows of the running
average that end at the last point and post-hoc EMA profiles. :func:`rl_swa.selection.choose`
races them and deploys the leader only when it beats the default on fresh episodes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from rl_swa.averaging import all_finite
from rl_swa.policy import SWAPolicy, copy_policy
from rl_swa.posthoc import normalizer_of, synthesize_ema, window_average
from rl_swa.selection import Candidate, check_rule, check_settings, choose

# Post-hoc EMA widths tried by default: Karras et al.'s range, as scripts/posthoc.py tries.
SIGMA_RELS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25)
MakeEnv = Callable[[int, int], VecEnv]  # (number of envs, seed of env 0) -> VecEnv; env i is seeded seed + i


def env_maker(env: str | MakeEnv) -> MakeEnv:
    """``make(n, seed)`` for an env id (``make_vec_env``) or a function of that form."""
    if isinstance(env, str):
        return lambda n, seed: make_vec_env(env, n_envs=n, seed=seed)
    if callable(env):
        return env
    raise ValueError(f"env={env!r} is not allowed; use an env id or a function (n_envs, seed) -> VecEnv")


class _Idle:
    """Stands in for an env of a DummyVecEnv whose episode is over: each step returns the
    observation it was left with and costs nothing (SB3's ``evaluate_policy`` steps every env
    until the longest episode ends; on Atari that is up to half of the env steps)."""

    def __init__(self, venv: DummyVecEnv, i: int, env) -> None:
        keys = venv.keys
        self.env = env
        self.obs = venv.buf_obs[None][i].copy() if keys == [None] else {k: venv.buf_obs[k][i].copy() for k in keys}

    def step(self, action):
        return self.obs, 0.0, False, False, {}


class ReusedEnvs:
    """A ``MakeEnv`` that keeps one VecEnv per number of envs and reseeds it for each play (the
    same episodes as a new one: SB3 passes the seeds to the next reset, which reseeds every env;
    the action spaces are reseeded as ``make_vec_env`` does). Making an Atari env loads its ROM
    (about 0.1 s, the time of 30-50 played steps) and a race makes one per episode. A context manager: closed at the end."""

    def __init__(self, make_env: MakeEnv) -> None:
        self.make_env = make_env
        self.envs: dict[int, VecEnv] = {}

    def __call__(self, n: int, seed: int) -> VecEnv:
        env = self.envs.get(n)
        if env is None:
            env = self.envs[n] = self.make_env(n, seed)
            return env
        env.seed(seed)
        inner = _innermost(env)
        if isinstance(inner, DummyVecEnv):
            for i, e in enumerate(inner.envs):
                e.action_space.seed(seed + i)
        return env

    def __enter__(self) -> ReusedEnvs:
        return self

    def __exit__(self, *exc) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def _innermost(env: VecEnv) -> VecEnv:
    while isinstance(env, VecEnvWrapper):
        env = env.venv
    return env


def play_episodes(policy, make_env: MakeEnv, seeds: Sequence[int], deterministic: bool = True, on_step=None) -> list[float]:
    """The return of one episode per seed, all in one VecEnv (env ``i`` reset with ``seeds[i]``;
    the seeds must be consecutive), one batched forward pass per step. Returns in seed order.

    ``on_step(k, obs)``: called at each step of episode ``k`` with the observation acted on.
    A batched forward pass rounds differently from a one-row one (last bit), which a chaotic env
    (MuJoCo) turns into different returns: scores compared with each other are played the same way.
    In a ``DummyVecEnv`` an env whose episode has ended is no longer stepped; the forward pass
    still covers every row and every row still draws its sampled action, so the episodes are the
    ones ``evaluate_policy`` plays."""
    seeds = list(seeds)
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError(f"play_episodes: seeds={seeds!r} are not consecutive")
    env = make_env(len(seeds), seeds[0])
    inner = _innermost(env)
    idle = isinstance(inner, DummyVecEnv)
    ended = []  # env index of each episode in the order SB3 records them (the order they end)

    def hook(local: dict, _) -> None:  # SB3 passes its locals, for each env i still in its episode
        i = local["i"]
        if on_step is not None:
            on_step(i, local["observations"][i].copy())
        if local["done"] and (not local["is_monitor_wrapped"] or "episode" in local["info"]):
            ended.append(i)
            if idle:  # one episode per env: this one is done
                inner.envs[i] = _Idle(inner, i, inner.envs[i])

    try:
        # sampled actions drawn from a generator seeded by the episodes: the same episodes play the
        # same way again, and candidates on the same seeds share their draws (common random numbers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[0])
            rewards, _ = evaluate_policy(
                policy,
                env,
                n_eval_episodes=len(seeds),
                deterministic=deterministic,
                return_episode_rewards=True,
                warn=False,
                callback=hook,
            )
    finally:
        if idle:
            inner.envs = [e.env if isinstance(e, _Idle) else e for e in inner.envs]
        if not isinstance(make_env, ReusedEnvs):  # kept for the next play
            env.close()
    by_env = dict(zip(ended, rewards, strict=True))
    return [float(by_env[i]) for i in range(len(seeds))]


def policy_with(template: SWAPolicy, weights: dict, obs_normalizer: Any = "keep", metadata: dict | None = None) -> SWAPolicy:
    """A policy of ``template``'s class with ``weights`` written over its own (and the template's
    observation normalization unless another is given)."""
    policy = copy_policy(template.policy)
    state = policy.state_dict()
    state.update(weights)
    policy.load_state_dict(state)
    normalizer = template.obs_normalizer if obs_normalizer == "keep" else obs_normalizer
    return SWAPolicy(policy, {**template.metadata, **(metadata or {})}, normalizer)


def posthoc_candidates(points: list[dict], template: SWAPolicy, sigma_rels: Sequence[float] = SIGMA_RELS) -> list[Candidate]:
    """From a :class:`~rl_swa.PosthocRecorder`'s saved points: the online weights at each point (with
    the observation statistics of that time), the windows of the running equal average that end
    at the last point, and post-hoc EMA profiles at the last point."""
    out = []
    if not points:
        return out
    last = points[-1]
    for p in points:
        if "online" in p and p is not last:  # the last point's online weights are the final ones
            out.append(
                Candidate(
                    f"online@{p['step']}",
                    "online_point",
                    lambda p=p: policy_with(template, p["online"], normalizer_of(p.get("obs_normalizer"))),
                    {"step": p["step"]},
                )
            )
    for a in [None, *points[:-1]]:
        start = 0 if a is None else a["step"]
        if a is None or last["n"] > a["n"]:
            out.append(
                Candidate(
                    f"window {start}-{last['step']}",
                    "window",
                    lambda a=a: policy_with(template, window_average(last, a)),
                    {"from_step": start, "to_step": last["step"]},
                )
            )
    if any(p.get("power") for p in points):
        for sigma in sigma_rels:
            out.append(
                Candidate(
                    f"ema sigma_rel={sigma}",
                    "ema",
                    lambda s=sigma: policy_with(template, synthesize_ema(points, s)[0]),
                    {"sigma_rel": sigma},
                )
            )
    return out


def most_candidates(averages: int, posthoc_points: int, power: bool, sigma_rels: Sequence[float] = SIGMA_RELS) -> int:
    """The most candidates :func:`candidates_of` can list for a callback with ``averages`` further
    averages and ``posthoc_points`` saved points (``power``: power EMAs saved): the final and the
    best evaluated online weights, the main average, the further ones, the online weights at each
    point but the last, a window from the start and from each point but the last, the EMA widths."""
    points = 2 * posthoc_points - 1 + (len(sigma_rels) if power else 0) if posthoc_points else 0
    return 3 + averages + points


def candidates_of(swa, sigma_rels: Sequence[float] = SIGMA_RELS) -> list[Candidate]:
    """Every candidate a trained :class:`~rl_swa.SWACallback` holds; the first is the default (the final online weights)."""
    from rl_swa.evaluation import SWAEvaluation
    from rl_swa.normalization import ObsNormalizer

    model = swa.model
    meta = {"algorithm": type(model).__name__, "num_timesteps": int(model.num_timesteps), "weights": "online"}
    online = SWAPolicy(copy_policy(model.policy), meta, ObsNormalizer.from_env(model.get_env()))
    out = [Candidate("online", "online", lambda: online)]
    evaluation = swa.component(SWAEvaluation)
    if evaluation is not None and evaluation.best is not None:
        out.append(Candidate("best evaluated", "best", evaluation.best_policy, {"step": evaluation.best["step"]}))
    if swa.has_snapshot:
        out.append(Candidate("swa", "average", lambda: swa.policy))
    for name, average in swa.extra.items():
        if average.n_updates and average.n_averaged:
            out.append(Candidate(name, "average", lambda name=name: swa.policy_of(name)))
    return out + posthoc_candidates(swa.posthoc, online, sigma_rels)


def finite_policy(policy) -> bool:
    """Whether every float tensor of the policy (weights and normalization statistics) is finite."""
    inner = getattr(policy, "policy", policy)
    if not hasattr(inner, "state_dict"):  # any object with predict(): nothing to check
        return True
    tensors = [t for t in inner.state_dict().values() if t.is_floating_point()]
    norm = getattr(policy, "obs_normalizer", None)
    stats = [] if norm is None else [*norm.mean.values(), *norm.var.values()]
    return all_finite(tensors) and all(bool(np.isfinite(a).all()) for a in stats)


def run_selection(
    candidates: Sequence[Candidate],
    make_env: MakeEnv,
    episodes: int = 200,
    level: float = 0.05,
    deterministic: bool = True,
    base_seed: int = 0,
    on_round=None,
    rule: str = "fixed",
) -> tuple[SWAPolicy, dict[str, Any]]:
    """Race ``candidates`` (the first is the default) on validation episodes; the deployed policy and the result.

    Every candidate is built first: one whose weights hold NaN/Inf cannot act and is left out (its
    row says so). When the default is such a one, the race's leader among the rest is deployed
    without a confirmation (nothing safe is left to fall back on), and the result says so.
    """
    episodes, level = check_settings(episodes, level)
    check_rule(rule)
    t0 = time.time()
    built = {i: c.make() for i, c in enumerate(candidates)}
    usable = [i for i in built if finite_policy(built[i])]
    if not usable:
        raise ValueError("every candidate holds NaN/Inf weights: nothing can be deployed")
    default_finite = usable[0] == 0
    with ReusedEnvs(make_env) as envs:

        def play(j: int, seeds: list[int]) -> list[float]:
            return play_episodes(built[usable[j]], envs, seeds, deterministic)

        names = [candidates[i].name for i in usable]
        result = choose(play, names, 0, episodes, level, base_seed, confirm=default_finite, on_round=on_round, rule=rule)
    result["wall_s"] = round(time.time() - t0, 1)
    result["deployed_index"] = usable[result["deployed_index"]]
    result["default"] = candidates[0].name
    result["default_finite"] = default_finite
    result["left_out"] = [candidates[i].name for i in built if i not in usable]
    rows = {r["name"]: r for r in result["candidates"]}
    result["candidates"] = []
    for i, c in enumerate(candidates):
        row = rows.get(c.name) or {"name": c.name, "race_episodes": 0, "race_mean": None, "eliminated_in_round": None}
        if i not in usable:
            row["left_out"] = "NaN/Inf weights"
        row["kind"] = c.kind
        row.update(c.info)
        result["candidates"].append(row)
    chosen = candidates[result["deployed_index"]]
    policy = built[result["deployed_index"]]
    if isinstance(policy, SWAPolicy):  # what it is, not the template's "online" and final step
        step = chosen.info.get("step", chosen.info.get("to_step"))
        policy.metadata = {**policy.metadata, "deployed": chosen.name, "weights": chosen.name}
        if step is not None:
            policy.metadata["num_timesteps"] = step
    return policy, result


def select_policy(
    swa,
    env: str | MakeEnv | None = None,
    episodes: int = 200,
    level: float = 0.05,
    deterministic: bool | None = None,
    seed: int = 0,
    sigma_rels: Sequence[float] = SIGMA_RELS,
    rule: str = "fixed",
) -> tuple[SWAPolicy, list[dict[str, Any]]]:
    """The policy to deploy from a trained ``SWACallback`` or a folder, and the table of what was tried.

    :param swa: a trained :class:`~rl_swa.SWACallback`, or the path of a folder: an RL Zoo
        experiment, a folder of SB3 checkpoints or an rl-swa run (:func:`rl_swa.select_folder`,
        which also writes the folder's ``deployed/``).
    :param env: an env id, or ``make(n_envs, seed) -> VecEnv`` (raw observations: the candidates
        carry their own observation normalization). A folder: only a checkpoint folder needs the id.
    :param episodes: the validation budget over all candidates (half races them, half confirms the leader).
    :param level: a candidate replaces the final online weights only when a one-sided paired test on
        fresh episodes finds it better at this level.
    :param deterministic: the action mode; None: deterministic for a callback, RL Zoo's rule for a folder.
    :param seed: validation episodes are seeded ``seed + 1_000_000 + i``.
    :param rule: ``fixed`` (one paired test) or ``sequential`` (a staged confirmation; ``rl_swa.selection.RULES``).
    :return: the deployed :class:`SWAPolicy` (its ``metadata["selection"]``: the leader, the
        confirmation's paired test, the episodes spent) and the table of candidates (a list of dicts
        that prints as a table: name, kind, episodes and mean in the race and in the confirmation,
        the round it left the race, decision).
    """
    from rl_swa.table import with_decisions

    if isinstance(swa, (str, os.PathLike)):
        from rl_swa.select_folder import select_folder

        if env is not None and not isinstance(env, str):
            raise ValueError("env: a folder takes an env id (a checkpoint folder) or None, not a function")
        policy, result = select_folder(swa, episodes, level, env=env, deterministic=deterministic, seed=seed, rule=rule)
    else:
        if swa is None or not hasattr(swa, "extra"):
            raise ValueError(f"swa: a trained SWACallback or the path of a folder is needed, got {type(swa).__name__}")
        if getattr(swa, "model", None) is None or swa.model.num_timesteps == 0:
            raise RuntimeError("select_policy: train first (model.learn(..., callback=swa)), then select")
        if env is None:
            raise ValueError("env: an env id or a function (n_envs, seed) -> VecEnv is needed to play the candidates")
        mode = True if deterministic is None else deterministic
        policy, result = run_selection(candidates_of(swa, sigma_rels), env_maker(env), episodes, level, mode, seed, rule=rule)
    table = with_decisions(result.pop("candidates"), result["deployed"])
    policy.metadata["selection"] = {k: result[k] for k in ("deployed", "leader", "level", "rule", "episodes", "confirmation")}
    return policy, table
