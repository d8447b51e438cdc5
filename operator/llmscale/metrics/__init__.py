"""llmscale.metrics."""
