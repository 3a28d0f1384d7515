"""What a benchmark ran on, written next to its numbers: code commit, CPU model, cores, torch, SB3."""

from __future__ import annotations

import json
import os
from pathlib import Path

import stable_baselines3
import torch

from agents.provenance import code_version, cpu_model


def machine() -> dict:
    return {
        "code": code_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "sb3": stable_baselines3.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def write_json(path: str | Path, data: dict) -> None:
    """One JSON per benchmark: ``{"machine": ..., **data}`` (earlier results live in git)."""
    Path(path).write_text(json.dumps({"machine": machine(), **data}, indent=1))
