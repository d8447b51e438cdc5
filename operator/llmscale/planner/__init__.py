"""llmscale.planner."""
