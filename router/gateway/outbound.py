"""One client request as it goes upstream: the endpoint, the headers, the timeouts, and the body for a given
target model (its id, its output limit, whether it supports extended thinking).

Owns the per-target body rewrite decision; ``view.body_for_model`` owns the rewrite itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from router.gateway.view import ParsedRequest, body_for_model
from router.policy.model import Action, ModelInfo
from router.settings import Settings
from router.upstream.endpoint import Upstream


class Outbound:
    """One client request as it goes upstream: endpoint, headers and timeouts; the body depends on the
    target model (its id, its output limit, whether it supports extended thinking)."""

    __slots__ = ("action", "headers", "models", "parsed", "path_qs", "settings", "slowest_rate", "upstream")

    def __init__(
        self,
        upstream: Upstream,
        settings: Settings,
        path_qs: str,
        headers: dict[str, str],
        parsed: ParsedRequest,
        models: Mapping[str, ModelInfo] | None = None,
        action: Action | None = None,
        slowest_rate: float = 20.0,
    ) -> None:
        self.upstream = upstream
        self.settings = settings
        self.path_qs = path_qs
        self.headers = headers
        self.parsed = parsed
        self.models = models or {}
        self.action = action
        self.slowest_rate = slowest_rate
        """The tier table's ``slowest_output_tokens_per_s``: a model without its own rate is held to it."""

    def output_rate(self, model: str) -> float:
        """The slowest output rate (tokens/s) a healthy ``model`` is expected to generate at."""
        info = self.models.get(model)
        rate = info.min_output_tokens_per_s if info is not None else None
        return rate if rate else self.slowest_rate

    def body(self, model: str) -> bytes:
        info = self.models.get(model)
        action = self.action
        if info is None or action is None:
            return body_for_model(self.parsed, model)
        return body_for_model(
            self.parsed,
            model,
            info.max_output_tokens if action.clamp_max_tokens else None,
            action.drop_unsupported and "thinking" not in info.features,
        )
