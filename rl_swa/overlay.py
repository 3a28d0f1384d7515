"""The TensorBoard charts of an SWA run (custom scalars), laid out to answer "did averaging help?".

TensorBoard colours lines by run, so a chart that overlays the online and the averaged reward of
several runs pairs lines of one colour that the reader cannot tell apart. The first charts hold
one quantity each: the margin of an average over the online policy on the same episodes
(``eval/margin_<average>``, above 0: the average scored higher), one line per run. The rewards
follow, one chart per policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

HELPED = "SWA: did averaging help? (average - online, same episodes; above 0: it helped)"
REWARDS = "SWA: evaluation reward, one chart per policy"


def layout(averages: Sequence[str]) -> dict:
    """The custom-scalars layout for the averages named ``averages`` (``"swa"`` first)."""
    helped = {f"{name} - online": ["Multiline", [f"^eval/margin_{re.escape(name)}$"]] for name in averages}
    rewards = {"online policy": ["Multiline", ["^eval/online_mean_reward$"]]}
    rewards |= {name: ["Multiline", [f"^eval/{re.escape(name)}_mean_reward$"]] for name in averages}
    rewards["distance online - average"] = ["Multiline", ["^swa/distance$"]]
    return {HELPED: helped, REWARDS: rewards}


def add_overlay(logger: Logger, averages: Sequence[str] = ("swa",)) -> bool:
    """Write the layout to every TensorBoard output of ``logger``; False if it has none."""
    written = False
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_custom_scalars(layout(averages))
            written = True
    return written
