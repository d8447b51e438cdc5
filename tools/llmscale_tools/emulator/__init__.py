"""llmscale_tools.emulator."""
