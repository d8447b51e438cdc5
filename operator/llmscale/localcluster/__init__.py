"""llmscale.localcluster."""
