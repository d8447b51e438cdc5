"""`llmscale backtest`: a suite of traffic scenarios through every policy, one table of results."""
