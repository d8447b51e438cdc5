"""llmscale.controller."""
