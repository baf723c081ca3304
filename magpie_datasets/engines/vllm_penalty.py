"""A vLLM logits processor that keeps the repetition penalty off some prompt tokens (and controls the first token).

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

The same processor applies `Sampling.first_token_bias` and `first_token_temperature` to a
request's first generated token ({FIRST_BIAS_KEY: [[id, bias], ...]}, {FIRST_SCALE_KEY: s}):
vLLM runs it before its penalties and its temperature, so the bias lands on the raw logits (as
vLLM's own `logit_bias`), and the first token's logits are multiplied by s = temperature /
first_token_temperature, which vLLM's division by `temperature` turns into a division by
`first_token_temperature`. A positive factor commutes with the repetition penalty, so the
penalty still sees the logits it would have seen, up to that scale.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .vllm import FIRST_BIAS_KEY, FIRST_SCALE_KEY, OUTPUT_ONLY_KEY, STOP_IDS_KEY


class UnpenalisedPromptTokens(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        # batch row -> (penalty, prompt token ids to keep unpenalised, the live output ids when
        # only prompt tokens not generated yet are exempt, else None)
        self.requests: dict[int, tuple[float, torch.Tensor, list[int] | None]] = {}
        # batch row -> (bias ids, bias values, logit scale, the live output ids): first token only
        self.first: dict[int, tuple[torch.Tensor | None, torch.Tensor | None, float | None, list[int]]] = {}

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

    def _first_state(self, params, prompt_ids: list[int] | None, output_ids: list[int]):
        extra = params.extra_args or {}
        bias, scale = extra.get(FIRST_BIAS_KEY), extra.get(FIRST_SCALE_KEY)
        if (not bias and scale is None) or output_ids:  # a resumed request is past its first token
            return None
        ids = values = None
        if bias:
            ids = torch.tensor([int(t) for t, _ in bias], device=self.device)
            values = torch.tensor([float(b) for _, b in bias], device=self.device)
        return ids, values, None if scale is None else float(scale), output_ids

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.requests, batch_update, self._state)
        process_dict_updates(self.first, batch_update, self._first_state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (ids, values, scale, output_ids) in list(self.first.items()):
            if output_ids:  # the first token is drawn: nothing more to do for this request
                del self.first[row]
                continue
            if ids is not None:
                if values is None:  # _first_state sets both or neither
                    raise RuntimeError(f"first-token bias of batch row {row} has token ids but no values")
                logits[row, ids] += values.to(logits.dtype)
            if scale is not None:
                logits[row] *= scale
        for row, (penalty, ids, live_output_ids) in self.requests.items():
            if live_output_ids:  # a prompt token the completion has repeated is penalised after all
                ids = ids[~torch.isin(ids, torch.tensor(live_output_ids, device=ids.device))]
            values = logits[row, ids]
            logits[row, ids] = torch.where(values > 0, values * penalty, values / penalty)
        return logits
