"""The triage router: an Anthropic Messages API compatible gateway that picks a Claude tier per request."""

__version__ = "0.1.0"
