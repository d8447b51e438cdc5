"""llmscale.emulator."""
