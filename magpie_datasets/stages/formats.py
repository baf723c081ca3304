"""Training formats: our columns as TRL's conversational SFT and DPO data, and back to ShareGPT.

All three are batched maps (`ds.map(fn, batched=True)`), shaped like TRL's data utilities
(`trl.data_utils`) expect them:

- `to_messages`   -> `messages` (language modeling, conversational: what `trl.SFTTrainer` takes)
- `to_sharegpt`   -> `conversations` (`{from: human|gpt|system, value}`, the published Magpie shape)
- `to_preference` -> `prompt`, `chosen`, `rejected` (preference with explicit prompt, conversational:
  what `trl.DPOTrainer` takes)

Two traps in TRL these functions are built around (found by running the trainers on our rows):

- `SFTTrainer` sees a `conversations` column of `{from, value}` turns and renames it to `messages`
  with TRL's `maybe_convert_to_chatml`, overwriting ours and keeping the roles `human` / `gpt`
  (a ChatML template then renders `<|im_start|>human`). Hand the trainer `messages` without
  `conversations`: `ds.map(to_messages, batched=True, remove_columns=ds.column_names)`.
- `DPOTrainer` checks the format with `is_conversational`, which looks at *one* of
  prompt/chosen/rejected (whichever a set yields first). A string `prompt` next to message-list
  `chosen` then fails in tokenization (`TypeError`: str + list), whichever way that check went
  (seen with trl 1.16). `to_preference` writes all three as message lists, and
  `chosen`/`rejected` hold only what follows the prompt.
"""

from __future__ import annotations

from datasets import Features
from ..schema import CONVERSATIONS, MESSAGES

from typing import Any, Mapping

from ..schema import batch_size_of, to_conversations
from ..version import versioned
from .columns import require_reads
from .entry import Stage


# the columns these stages write (TRL's formats)
SFT_FEATURES = Features({"messages": MESSAGES})

SHAREGPT_FEATURES = Features({"conversations": CONVERSATIONS})

DPO_FEATURES = Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES})

# ShareGPT speaker <-> chat role. "user"/"assistant" are accepted as ShareGPT speakers too,
# since several public ShareGPT sets write them.
_ROLE_OF_SPEAKER = {
    "human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"
}
_SPEAKER_OF_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}

PAIR_ISSUE = "pair_issue"  # written by the preference stage when a row has no chosen/rejected pair


@versioned
def to_messages(batch: Mapping[str, list]) -> dict[str, list]:
    """Batched map: a `messages` column of `{role, content}` turns for TRL's SFT (conversational).

    Input: `conversations` (ShareGPT) where a row has one, else `instruction`, `response`,
    `instruction_2`, `response_2`, ... (turns stop at the first missing instruction); Output:
    `messages`. No options: every column it reads keeps its name.

    ```
    {"conversations": [[{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello!"}]]}
    {"instruction": ["Hi?"], "response": ["Hello!"], "instruction_2": ["And?"], "response_2": ["Bye."]}
    -> {"messages": [[{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}, ...]]}
    ```

    For `trl.SFTTrainer` drop the other columns (a `conversations` column left beside
    `messages` overwrites it there): `ds.map(to_messages, batched=True, remove_columns=ds.column_names)`.
    """
    messages = []
    for row in range(batch_size_of(batch)):
        conversation = batch["conversations"][row] if "conversations" in batch else None
        turns = conversation or to_conversations(*_texts_of_columns(batch, row, "to_messages"))
        messages.append([_message_of_turn(turn, row) for turn in turns])
    return {"messages": messages}


@versioned
def to_sharegpt(batch: Mapping[str, list]) -> dict[str, list]:
    """Batched map: a `conversations` column of ShareGPT turns `{from: human|gpt|system, value}`.

    Input: `messages` where the batch has it, else `instruction`/`response`(`_2`, ...) columns;
    Output: `conversations`, the published Magpie shape. No options.

    ```
    {"messages": [[{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}]]}
    -> {"conversations": [[{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello!"}]]}
    ```

    >>> to_sharegpt({"instruction": ["Hi?"], "response": ["Hello!"]})
    {'conversations': [[{'from': 'human', 'value': 'Hi?'}, {'from': 'gpt', 'value': 'Hello!'}]]}
    """
    conversations = []
    for row in range(batch_size_of(batch)):
        if "messages" in batch:
            conversations.append([_turn_of_message(message, row) for message in batch["messages"][row]])
        else:
            conversations.append(to_conversations(*_texts_of_columns(batch, row, "to_sharegpt")))
    return {"conversations": conversations}


@versioned
def to_preference(
    batch: Mapping[str, list], *, drop_unpaired: bool = True, issue_column: str = PAIR_ISSUE
) -> dict[str, list]:
    """Batched map: TRL's conversational preference format with an explicit prompt, for `trl.DPOTrainer`.

    Input: `chosen`/`rejected` as whole conversations (as the authors' DPO sets and `to_preference_pairs` hold them), and
    `issue_column` where present; Output: `prompt`, `chosen`, `rejected`. The shared turns up to the last user turn
    become `prompt`, the assistant turn(s) after it stay in `chosen`/`rejected`:

    ```
    {"chosen":   [[{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}]],
     "rejected": [[{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Green."}]]}
    -> {"prompt":   [[{"role": "user", "content": "Sky?"}]],
        "chosen":   [[{"role": "assistant", "content": "Blue."}]],
        "rejected": [[{"role": "assistant", "content": "Green."}]]}
    ```

    Rows already in this shape (message-list `prompt`, `chosen` starting with an assistant turn)
    pass through unchanged.

    Args:
        drop_unpaired (`bool`, *optional*, defaults to `True`): what happens to rows the preference
            stage marked as not pairable (`issue_column` non-null: "no_responses",
            "single_distinct_response", "tie"). True drops them, and the function then returns every
            column of the batch, so the row count shrinks inside a plain
            `ds.map(to_preference, batched=True)`; follow with
            `.select_columns(["prompt", "chosen", "rejected"])` to keep only TRL's columns. False
            raises a `ValueError` naming the first such row instead. Without such rows the output is
            the same either way.
        issue_column (`str`, *optional*, defaults to `"pair_issue"`): the column that marks rows without
            a pair, as `to_preference_pairs` writes it (`pair_issue`). A batch without this column has
            every row treated as paired.
    """
    batch = require_reads(batch, "to_preference")
    unpaired = [row for row, issue in enumerate(batch.get(issue_column) or []) if issue is not None]
    if unpaired and not drop_unpaired:
        first = unpaired[0]
        raise ValueError(
            f"to_preference: {len(unpaired)} row(s) have no preference pair ({issue_column!r} is set, "
            f"e.g. row {first} of this batch: {batch[issue_column][first]!r}). Drop them with "
            f"drop_unpaired=True or ds.filter(lambda r: r[{issue_column!r}] is None)."
        )
    kept = sorted(set(range(batch_size_of(batch))) - set(unpaired))
    prompts, chosen, rejected = [], [], []
    for row in kept:
        prompt, one_chosen, one_rejected = _split_pair(batch, row, issue_column)
        prompts.append(prompt)
        chosen.append(one_chosen)
        rejected.append(one_rejected)
    out = {"prompt": prompts, "chosen": chosen, "rejected": rejected}
    if unpaired:  # a batched map may only change the row count when it returns every column
        out = {**{column: [values[row] for row in kept] for column, values in batch.items()}, **out}
    return out


def _message_of_turn(turn: Mapping[str, Any], row: int) -> dict[str, str]:
    speaker = turn.get("from")
    if speaker not in _ROLE_OF_SPEAKER:
        raise ValueError(
            f"to_messages: row {row} of this batch has a ShareGPT turn from {speaker!r}; expected one of "
            f"{sorted(_ROLE_OF_SPEAKER)}. Rename the speaker or drop the row first."
        )
    return {"role": _ROLE_OF_SPEAKER[speaker], "content": turn["value"]}


def _turn_of_message(message: Mapping[str, Any], row: int) -> dict[str, str]:
    role = message.get("role")
    if role not in _SPEAKER_OF_ROLE:
        raise ValueError(
            f"to_sharegpt: row {row} of this batch has a {role!r} message; ShareGPT here has only "
            f"{sorted(_SPEAKER_OF_ROLE)} (human/gpt/system). Drop tool turns before converting."
        )
    return {"from": _SPEAKER_OF_ROLE[role], "value": message["content"]}


def _texts_of_columns(batch: Mapping[str, list], row: int, stage: str) -> list[str]:
    """Alternating user/assistant texts of `instruction`, `response`, `instruction_2`, ... for one row."""
    batch = require_reads(batch, stage, ("instruction", "response"))
    texts = []
    for suffix in _turn_suffixes(batch):
        instruction = batch[f"instruction{suffix}"][row]
        if instruction is None:  # this row has fewer turns than the longest one
            break
        response = batch[f"response{suffix}"][row] if f"response{suffix}" in batch else None
        if response is None:
            raise ValueError(
                f"{stage}: row {row} of this batch has 'instruction{suffix}' but no 'response{suffix}': "
                f"a conversation cannot end on a user turn for training. Generate the response, or "
                f"filter such rows (e.g. on 'response_issue') first."
            )
        texts += [instruction, response]
    return texts


def _turn_suffixes(batch: Mapping[str, list]) -> list[str]:
    suffixes, turn = [""], 2
    while f"instruction_{turn}" in batch:
        suffixes.append(f"_{turn}")
        turn += 1
    return suffixes


def _split_pair(batch: Mapping[str, list], row: int, issue_column: str) -> tuple[list, list, list]:
    """(prompt, chosen, rejected) of one row: shared turns up to the last user turn, then the answers."""
    chosen, rejected = batch["chosen"][row], batch["rejected"][row]
    if not chosen or not rejected:
        raise ValueError(
            f"to_preference: row {row} of this batch has an empty chosen/rejected "
            f"(chosen={chosen!r}, rejected={rejected!r}). Mark such rows in {issue_column!r} and use "
            f"drop_unpaired=True, or filter them first."
        )
    for name, messages in (("chosen", chosen), ("rejected", rejected)):
        if not (isinstance(messages, list) and all(isinstance(m, Mapping) and "role" in m for m in messages)):
            raise ValueError(
                f"to_preference: row {row}: {name!r} must be a list of {{role, content}} messages, got "
                f"{messages!r}. Build pairs with to_preference_pairs."
            )
    prompt = batch["prompt"][row] if "prompt" in batch else None
    if chosen[0]["role"] == "assistant" and rejected[0]["role"] == "assistant":
        # Already split: keep it, but only with a conversational prompt, as TRL needs all three alike.
        if isinstance(prompt, list) and prompt and isinstance(prompt[-1], Mapping):
            if prompt[-1].get("role") == "user":
                return prompt, chosen, rejected
        raise ValueError(
            f"to_preference: row {row} has chosen/rejected without the user turn and no message-list "
            f"'prompt' ending in a user turn (prompt={prompt!r}). Pass whole conversations in "
            f"chosen/rejected."
        )
    last_user = max((i for i, m in enumerate(chosen) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ValueError(f"to_preference: row {row}: 'chosen' has no user turn: {chosen!r}.")
    shared = chosen[: last_user + 1]
    if [dict(m) for m in rejected[: last_user + 1]] != [dict(m) for m in shared]:
        raise ValueError(
            f"to_preference: row {row}: chosen and rejected differ before the last user turn, so they do not "
            f"answer the same prompt. chosen={chosen!r}, rejected={rejected!r}."
        )
    answers = chosen[last_user + 1 :], rejected[last_user + 1 :]
    if not all(answer and answer[0]["role"] == "assistant" for answer in answers):
        raise ValueError(
            f"to_preference: row {row}: chosen and rejected must each continue the prompt with an assistant "
            f"turn, got chosen={answers[0]!r}, rejected={answers[1]!r}."
        )
    return shared, answers[0], answers[1]


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("to_messages", to_messages, "map",
          "TRL's conversational SFT format (from `conversations` where a row has them)",
          reads=("instruction", "response"), writes=SFT_FEATURES),
    Stage("to_sharegpt", to_sharegpt, "map", "the published ShareGPT `conversations`",
          reads=("instruction", "response"), writes=SHAREGPT_FEATURES),
    Stage("to_preference", to_preference, "map", "TRL's DPO format (prompt / chosen / rejected)",
          reads=("chosen", "rejected"), writes=DPO_FEATURES),
)
