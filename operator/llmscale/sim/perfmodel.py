"""The replica performance model now lives in the pure planner layer (`llmscale.planner.perfmodel`)
so the operator can build capacity priors without importing the simulator; this re-export keeps
`from llmscale.sim.perfmodel import ReplicaPerformanceModel` working."""

from __future__ import annotations

from llmscale.planner.perfmodel import ReplicaPerformanceModel, capacity_prior

__all__ = ["ReplicaPerformanceModel", "capacity_prior"]
