"""llmscale.resources."""
