"""What an lm-eval run of ``lift_dlm`` did, for its results file: sampler settings used, passes, tokens, seconds."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

_TOTALS = ("nfe", "request_nfe", "generated_tokens", "generation_seconds", "generate_requests",
           "likelihood_requests", "likelihood_forward_rows", "likelihood_seconds")


class RunRecord:
    """Counts of one process's requests, in total and per sampler configuration.

    ``nfe`` counts forward passes over a batch (a CFG step counts two); ``request_nfe`` counts them
    per request, so ``nfe_per_request`` is what one prompt costs whatever the batch size.
    """

    def __init__(self):
        self.totals = Counter(dict.fromkeys(_TOTALS, 0))
        self.by_config: dict[str, Counter] = {}

    def generation(self, config, requests: int, nfe: int, seconds: float) -> None:
        """One sampler call on ``requests`` prompts with ``config`` (a ``DiffusionGenerationConfig``)."""
        used = self.by_config.setdefault(json.dumps(dataclasses.asdict(config), sort_keys=True), Counter())
        for counts, key in ((self.totals, "generate_requests"), (used, "requests")):
            counts.update({"nfe": nfe, "request_nfe": nfe * requests, key: requests,
                           "generated_tokens": requests * config.gen_length, "generation_seconds": seconds})

    def likelihood(self, requests: int, rows: int, seconds: float) -> None:
        """One batch of likelihood requests scored with ``rows`` sequences."""
        self.totals.update(likelihood_requests=requests, likelihood_forward_rows=rows, likelihood_seconds=seconds)

    @staticmethod
    def _rates(counts: Counter) -> dict:
        seconds, requests = counts["generation_seconds"], max(1, counts["generate_requests"] + counts["requests"])
        return {**counts, "nfe_per_request": counts["request_nfe"] / requests,
                "tokens_per_second": counts["generated_tokens"] / seconds if seconds else None}

    def summary(self) -> dict:
        """The totals with their rates, and ``sampler_configs_used``: each configuration with its own."""
        used = [{"sampler": json.loads(key), **self._rates(counts)} for key, counts in self.by_config.items()]
        return {**self._rates(self.totals), "sampler_configs_used": used}
