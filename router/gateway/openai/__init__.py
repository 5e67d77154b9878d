"""The OpenAI chat completions surface (``POST /v1/chat/completions``), as a dialect of the pipeline.

The router forwards these requests to the upstream's own OpenAI-compatible endpoint with the ``model``
rewritten; it never translates formats. What it needs to read them lives here, one concern per module:
``request`` (the body, and a Messages-shaped reading of it for classification and rules), ``usage``
(token counts from ``usage.prompt_tokens`` / ``completion_tokens`` / ``cached_tokens``), ``stream``
(which ``data:`` chunks are content, the end, an error; the usage chunk) and ``errors`` (the
``{"error": {"message", "type", "param", "code"}}`` envelope). ``router.gateway.dialect`` assembles them.
"""
