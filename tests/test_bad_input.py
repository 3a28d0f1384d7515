"""Property-based: every invalid input is a clear error naming the field, never a traceback."""

import math
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.config import ConfigError, load_config
from rl_swa import SWACallback

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = ROOT / "configs/classic/cartpole_a2c.yaml"

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
fields = st.sampled_from(
    [
        "swa.start",
        "swa.update_every",
        "swa.mode",
        "swa.decay",
        "swa.parts",
        "swa.swa_lr",
        "swa.anneal",
        "swa.anneal_strategy",
        "swa.cycle",
        "swa.swa_lr_max",
        "swa.unknown",
        "n_envs",
        "optimizer",
        "algo",
        "envs",
        "budgets.smoke.timesteps",
        "budgets.smoke.eval_freq",
        "eval.seed",
        "eval.deterministic",
        "hyperparams.env",
        "mystery",
        "on_divergence",
        "sticky_actions",
        "budgets",
        "swa.flatten",
        "swa.skip_nonfinite",
        "experiment",
        "policy",
        "hyperparams",
        "hyperparams.n_steps",
        "hyperparams.learning_rate",
        "hyperparams.foo",
        "hyperparams.gamma",
        "policy_kwargs",
        "policy_kwargs.net_arch",
        "policy_kwargs.activation_fn",
        "policy_kwargs.foo",
        "budgets.smoke.hyperparams",
        "budgets.smoke.hyperparams.n_steps",
    ]
)


@settings(max_examples=300, deadline=None)
@given(field=fields, value=values)
def test_config_overrides_validate_or_name_the_field(field, value):
    raw = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    try:
        cfg = load_config(CARTPOLE, [f"{field}={raw}"])
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert field.split(".")[0] in message or field.split(".")[-1] in message, message
        return
    # accepted: the value is really in the config
    node = cfg.model_dump()
    for key in field.split("."):
        node = node[key]


def test_config_passes_layout_and_guard_to_the_callback():
    from agents.builders import build_callback

    default = build_callback(load_config(CARTPOLE), "swa", None, 1000, 1)
    assert default.flatten is False and default.skip_nonfinite is True  # the flat layout is opt-in
    off = build_callback(load_config(CARTPOLE, ["swa.flatten=true", "swa.skip_nonfinite=false"]), "swa", None, 1000, 1)
    assert off.flatten is True and off.skip_nonfinite is False


def test_control_character_in_an_override_is_a_config_error():
    with pytest.raises(ConfigError, match="--set seed: .* not valid YAML"):
        load_config(CARTPOLE, ["seed=\x1f"])


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=40))
def test_malformed_override_strings(text):
    try:
        load_config(CARTPOLE, [text])
    except ConfigError as exc:
        assert "--set" in str(exc) or "config" in str(exc) or str(CARTPOLE) in str(exc)


KWARGS = [
    "start",
    "update_every",
    "mode",
    "decay",
    "parts",
    "swa_lr",
    "anneal",
    "anneal_strategy",
    "cycle",
    "swa_lr_max",
    "eval_freq",
    "n_eval_episodes",
    "eval_seed",
    "flatten",
]


@settings(max_examples=400, deadline=None)
@given(kwargs=st.dictionaries(st.sampled_from(KWARGS), values, max_size=3))
def test_callback_arguments_construct_or_raise_value_error_naming_one(kwargs):
    try:
        cb = SWACallback(**kwargs)
    except ValueError as exc:
        assert any(f"{name}=" in str(exc) for name in KWARGS), str(exc)
        return
    if "start" in kwargs:
        s = kwargs["start"]
        assert (isinstance(s, int) and s >= 0) or (isinstance(s, float) and 0 < s < 1 and math.isfinite(s))
    assert cb.update_every >= 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.one_of(
        st.floats(min_value=1.0, max_value=1e9),
        st.integers(max_value=-1),
        st.text(min_size=1, max_size=5).filter(lambda t: t.strip() and not t.strip().lstrip("-").isdigit()),
    )
)
def test_train_script_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, start):
    from agents.cli import train

    out = tmp_path / "runs"
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", str(CARTPOLE), "--budget", "smoke", "--out", str(out), "--no-progress", "--set", f"swa.start={start!r}"],
    )
    with pytest.raises(SystemExit) as stop:
        train.main()
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "swa.start" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "command, argv, field",
    [
        ("train", ["CONFIG", "--seed", "99999999999999999999", "--budget", "smoke"], "--seed"),
        ("train", ["CONFIG", "--threads", "0"], "--threads"),
        ("soak", ["--kills", "-1"], "--kills"),
        ("compare", ["CONFIG", "--seeds", "0"], "--seeds"),
        ("compare", ["CONFIG", "--jobs", "-2"], "--jobs"),
        ("compare", ["CONFIG", "--reps", "0"], "--reps"),
        ("evaluate", ["x.safetensors", "--episodes", "1e9"], "--episodes"),
        ("evaluate", ["x.safetensors", "--seed", "-1"], "--seed"),
        ("posthoc", ["RUN", "--val-episodes", "0"], "--val-episodes"),
        ("select", ["RUN", "--episodes", "5"], "--episodes"),
        ("select", ["RUN", "--test-episodes", "-3"], "--test-episodes"),
        ("ensemble", ["RUN", "--test-episodes", "0"], "--test-episodes"),
        ("report", ["RUN", "--last-k", "0"], "--last-k"),
    ],
)
def test_every_integer_argument_names_its_range_in_one_line(command, argv, field, capsys, tmp_path):
    import importlib

    main = importlib.import_module(f"agents.cli.{command}").main
    config = str(Path(__file__).resolve().parent.parent / "configs/classic/cartpole_a2c.yaml")
    old = sys.argv
    sys.argv = [command, *(config if a == "CONFIG" else str(tmp_path) if a == "RUN" else a for a in argv)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: argument {field}") and "use an int in [" in err, err
    assert not any(tmp_path.iterdir())
