"""A vLLM logits processor that keeps the repetition penalty off the stop tokens.

vLLM lowers every token of the prompt and the output by `repetition_penalty`, the
end-of-turn token included: it closes every earlier turn of a chat prompt, so a penalised
small model rarely ends its answer. The transformers engine leaves stop tokens out of the
penalty (`Sampling.repetition_penalty`); this processor gives vLLM the same behaviour.

vLLM applies logits processors that can change the argmax just before its penalties, so
this one scales each stop token that sits in the prompt by the inverse of the penalty
(l > 0: l * p; l <= 0: l / p); the penalty then brings it back to l exactly. A request opts
in with `SamplingParams(extra_args={STOP_IDS_KEY: [ids]})`; loaded by `VLLMEngine` as
`logits_processors=[...]`. Imported inside vLLM's worker processes only.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .vllm import STOP_IDS_KEY


class StopTokensUnpenalised(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.requests: dict[int, tuple[float, list[int]]] = {}  # batch row -> (penalty, stop ids in its prompt)

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token greedy decoding picks

    @staticmethod
    def _state(params, prompt_ids: list[int] | None, _output_ids) -> tuple[float, list[int]] | None:
        penalty = params.repetition_penalty
        ids = (params.extra_args or {}).get(STOP_IDS_KEY)
        if penalty == 1.0 or not ids or not prompt_ids:
            return None
        in_prompt = set(prompt_ids)
        # only tokens the penalty will touch get compensated; a generated stop token ends the request
        ids = sorted(int(i) for i in set(ids) | set(params.all_stop_token_ids) if i in in_prompt)
        return (penalty, ids) if ids else None

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.requests, batch_update, self._state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (penalty, ids) in self.requests.items():
            index = torch.tensor(ids, device=logits.device)
            values = logits[row, index]
            logits[row, index] = torch.where(values > 0, values * penalty, values / penalty)
        return logits
