"""llmscale.sim."""
