"""llmscale.scaling."""
