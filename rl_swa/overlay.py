"""The TensorBoard chart that overlays online and averaged evaluation reward (custom scalars)."""

from __future__ import annotations

from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

LAYOUT = {
    "SWA": {
        "eval reward: online vs averaged": [
            "Multiline",
            ["eval/online_mean_reward", "eval/swa_mean_reward", "eval/swa_.*_mean_reward", "eval/ema_.*_mean_reward"],
        ],
        "distance online - average": ["Multiline", ["swa/distance"]],
    }
}


def add_overlay(logger: Logger) -> bool:
    """Write the layout to every TensorBoard output of ``logger``; False if it has none."""
    written = False
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_custom_scalars(LAYOUT)
            written = True
    return written
