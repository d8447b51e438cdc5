"""llmscale.bench."""
