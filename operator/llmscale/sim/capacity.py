"""The capacity every causal policy is given: the planner's figure at documented prior lengths.

A platform team sizing an autoscaler target has the model, the GPU and a benchmark, not the
future traffic's request lengths. So every policy of the simulator (llmscale's own and the
hpa/keda/kpa baselines alike) gets one replica's capacity from the replica performance model at
fixed prior request lengths (ShareGPT-like chat, as in the vLLM benchmarks), times the share of
saturation a replica may run at within its latency SLO. These are the operator's own priors,
read from their one source, `llmscale.api.defaults` (1000 / 200 tokens, utilisation 0.75).

Worked number: Llama-3-8B on 1x H100 saturates near 11.7 req/s at 1000 / 200 tokens, so the
planned capacity is about 8.8 req/s (see tests/unit/sim/test_sim_capacity.py).
"""

from __future__ import annotations

from llmscale.api import defaults
from llmscale.sim.perfmodel import ReplicaPerformanceModel

PRIOR_PROMPT_TOKENS = defaults.PRIOR_PROMPT_TOKENS
PRIOR_GENERATION_TOKENS = defaults.PRIOR_GENERATION_TOKENS
PRIOR_UTILISATION = defaults.TARGET_UTILIZATION


def planned_capacity_rps(model: ReplicaPerformanceModel) -> float:
    """Requests/s one replica serves within its SLO at the prior lengths."""
    saturation = model.saturation_requests_per_second(PRIOR_PROMPT_TOKENS, PRIOR_GENERATION_TOKENS)
    return saturation * PRIOR_UTILISATION
