"""llmscale.api."""
