"""rl-swa: stochastic weight averaging for Stable-Baselines3 agents.

Public names: :class:`WeightAverage` (the engine), :class:`SWACallback` (SB3 integration),
:class:`SWAConfig` (its settings, validated once), :class:`SWAEvaluation` and :class:`PosthocRecorder`
(parts that combine with it), :class:`SWAPolicy` (the averaged policy), :class:`SWAGRecorder` and
:class:`SWAGPolicy` (SWA-Gaussian), :class:`EnsemblePolicy` (MultiSWA), :class:`OnAverage` (any SB3 callback on the averaged
weights), :func:`select_policy` and :func:`select_folder` (the policy to deploy, chosen after training, from a
callback, an RL Zoo folder, SB3 checkpoints or an rl-swa run), the SWA-phase LR
schedules and the BatchNorm helper.
"""

from rl_swa.averaging import WeightAverage, flatten_parameters
from rl_swa.batch_norm import update_batch_norm
from rl_swa.callback import SWACallback
from rl_swa.config import Average, SWAConfig
from rl_swa.deploy import select_policy
from rl_swa.ensemble import EnsemblePolicy
from rl_swa.evaluation import SWAEvaluation
from rl_swa.on_average import OnAverage
from rl_swa.policy import SWAPolicy
from rl_swa.posthoc import PosthocRecorder
from rl_swa.schedules import AnnealSchedule, CyclicSchedule
from rl_swa.select_folder import select_folder
from rl_swa.swag import SWAGPolicy, SWAGRecorder
from rl_swa.use_average import ActWithAverage, ResetToAverage

__version__ = "0.1.0"

__all__ = [
    "ActWithAverage",
    "AnnealSchedule",
    "Average",
    "CyclicSchedule",
    "EnsemblePolicy",
    "OnAverage",
    "PosthocRecorder",
    "ResetToAverage",
    "SWACallback",
    "SWAConfig",
    "SWAEvaluation",
    "SWAGPolicy",
    "SWAGRecorder",
    "SWAPolicy",
    "WeightAverage",
    "flatten_parameters",
    "select_folder",
    "select_policy",
    "update_batch_norm",
    "__version__",
]
