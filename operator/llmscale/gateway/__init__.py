"""llmscale.gateway."""
