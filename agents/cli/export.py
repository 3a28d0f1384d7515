"""Export a deployed policy as an ONNX graph that acts like ``model.predict(obs, deterministic=True)``.

    rl-swa export RUN/deployed --onnx [--out policy.onnx]

DEPLOYED is the folder ``rl-swa select`` wrote (its ``policy.safetensors``) or a policy file
(``.safetensors``). Observation normalization and action post-processing (clip, or unscale a
squashed action) are inside the graph: ``onnxruntime`` alone runs it, on a batch of raw
observations (images channel-first, as the policy sees them). Needs ``pip install 'rl-swa[export]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.cli._cli import Parser, guarded, stop_message  # first: signals during start-up
from agents.config import ConfigError

stop_message("interrupted; nothing was written")


def _args() -> argparse.Namespace:
    p = Parser(description=__doc__)
    p.add_argument("deployed", help="a deployed/ folder of rl-swa select, or a policy .safetensors file")
    p.add_argument("--onnx", action="store_true", help="write an ONNX graph (the one format so far)")
    p.add_argument("--out", default=None, help="where to write it (default: DEPLOYED/policy.onnx)")
    args = p.parse_args()
    if not args.onnx:
        raise ConfigError("--onnx: say which format to export (ONNX is the one format so far)")
    return args


@guarded
def main() -> int:
    args = _args()
    path = Path(args.deployed)
    file = path / "policy.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{path}: no policy.safetensors (a deployed/ folder of rl-swa select, or a policy file)")
    out = Path(args.out) if args.out else (path if path.is_dir() else path.parent) / "policy.onnx"
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--onnx: {exc.name} is not installed; pip install 'rl-swa[export]'") from None
    import contextlib
    import io

    import torch

    from rl_swa import SWAPolicy
    from rl_swa.export import export_onnx
    from rl_swa.files import atomic_write

    torch.set_num_threads(1)
    try:
        policy = SWAPolicy.load(file, device="cpu")
    except (ValueError, OSError, KeyError) as exc:
        raise ConfigError(f"{file}: {exc}".replace("\n", " ")) from None
    tmp = out.with_name(f".{out.name}.export")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torch.onnx's progress lines
            export_onnx(policy, tmp)
        atomic_write(out, tmp.read_bytes())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out} (input 'obs': raw observations, batch first; output 'action': what predict returns)")
    return 0


if __name__ == "__main__":
    main()
