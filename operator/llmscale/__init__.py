"""llmscale: serve LLMs on Kubernetes at the lowest GPU cost that meets a latency SLO."""

__version__ = "0.1.0"
