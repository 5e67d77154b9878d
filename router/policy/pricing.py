"""What one answer costs: the price formula over the tier table's per-model prices.

Owns ``cost_usd`` and the default cache price multipliers. Prices are policy (``tiers.yaml``), never code.
"""

from __future__ import annotations

from router.policy.model import ModelInfo

# Defaults when a model's policy entry gives no cache prices (Anthropic's published multipliers).
CACHE_READ_FACTOR = 0.1
CACHE_WRITE_FACTOR = 1.25


def cost_usd(
    model_info: ModelInfo,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """USD for one response's usage, prices per million tokens.

    Pass the API's usage fields as they come: its ``input_tokens`` already excludes
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens``, so nothing is counted twice.
    """
    cache_read = model_info.cache_read if model_info.cache_read is not None else model_info.input * CACHE_READ_FACTOR
    cache_write = (
        model_info.cache_write if model_info.cache_write is not None else model_info.input * CACHE_WRITE_FACTOR
    )
    return (
        input_tokens * model_info.input
        + output_tokens * model_info.output
        + cache_read_tokens * cache_read
        + cache_write_tokens * cache_write
    ) / 1_000_000


BATCH_PRICE_FACTOR = 0.5
"""Message Batches are billed at half the standard price, every token type alike (Anthropic's published
batch discount; ``tiers.yaml`` has no batch prices of its own, so the standard ones are halved)."""


def batch_cost_usd(
    model_info: ModelInfo,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """USD for one batch result's usage: ``cost_usd`` at ``BATCH_PRICE_FACTOR``."""
    return cost_usd(model_info, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) * BATCH_PRICE_FACTOR
