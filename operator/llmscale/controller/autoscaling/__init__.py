"""The scaling half of the controller: the loop that gathers, decides and applies replicas.

- `handlers`: the kopf glue (per-LLMDeployment daemons under kopf's lifecycle and peering, the
  activation watch, startup/cleanup of the shared pieces kept in kopf's memo);
- `loop`: `Autoscaler`, one batched read per tick -> `llmscale.scaling.decide` per deployment
  -> apply, Events, status, /metrics;
- `gather`: metrics + workload -> the frozen `DecisionInputs`; status fragments;
- `cluster`: the loop's door to the API server (lists, status, Events, pod deletion costs);
- `memory`: what the loop remembers per deployment between ticks (round-trips through status);
- `policy`: LLMDeployment body -> `ScalingPolicy` (the simulator's translation);
- `settings`: the loop's settings (CLI flags, LLMSCALE_* environment);
- `operator_metrics`: the operator's own /metrics.

The pure trackers it feeds (cold start, cost) live in `llmscale.scaling`.
"""
