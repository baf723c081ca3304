"""A vLLM logits processor that keeps the repetition penalty off some prompt tokens.

vLLM lowers every token of the prompt and the output by `repetition_penalty`. The
transformers engine leaves out the stop tokens (the end-of-turn token closes every earlier
turn of a chat prompt, so a penalised small model rarely ends its answer) and, with
`Sampling.penalize_prompt=False`, every prompt token the completion has not generated
itself; this processor gives vLLM the same behaviour.

vLLM applies logits processors that can change the argmax just before its penalties, so
this one scales each such prompt token by the inverse of the penalty (l > 0: l * p;
l <= 0: l / p); the penalty then brings it back to l exactly. A request opts in with
`SamplingParams(extra_args={STOP_IDS_KEY: [ids]})` and/or `{OUTPUT_ONLY_KEY: True}`; loaded by
`VLLMEngine` as `logits_processors=[...]`. Imported inside vLLM's worker processes only.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .vllm import OUTPUT_ONLY_KEY, STOP_IDS_KEY


class UnpenalisedPromptTokens(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        # batch row -> (penalty, prompt token ids to keep unpenalised, the live output ids when
        # only prompt tokens not generated yet are exempt, else None)
        self.requests: dict[int, tuple[float, torch.Tensor, list[int] | None]] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token greedy decoding picks

    def _state(self, params, prompt_ids: list[int] | None, output_ids: list[int]):
        penalty = params.repetition_penalty
        extra = params.extra_args or {}
        if penalty == 1.0 or not prompt_ids:
            return None
        in_prompt = set(prompt_ids)
        if extra.get(OUTPUT_ONLY_KEY):
            # vLLM appends to `output_ids` in place, so apply() sees what has been generated
            return penalty, torch.tensor(sorted(in_prompt), device=self.device), output_ids
        stops = extra.get(STOP_IDS_KEY)
        if not stops:
            return None
        # only tokens the penalty will touch get compensated; a generated stop token ends the request
        ids = sorted(int(i) for i in set(stops) | set(params.all_stop_token_ids) if i in in_prompt)
        return (penalty, torch.tensor(ids, device=self.device), None) if ids else None

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.requests, batch_update, self._state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (penalty, ids, output_ids) in self.requests.items():
            if output_ids:  # a prompt token the completion has repeated is penalised after all
                ids = ids[~torch.isin(ids, torch.tensor(output_ids, device=ids.device))]
            values = logits[row, ids]
            logits[row, ids] = torch.where(values > 0, values * penalty, values / penalty)
        return logits
