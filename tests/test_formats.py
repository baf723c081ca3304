"""Training formats, checked against TRL itself: its data utilities and a few real SFT/DPO steps.

The model and tokenizer are made here: a byte-level BPE trained on the test texts with a ChatML
chat template, and a 2-layer Qwen2 with hidden size 16 and random weights, trained on CPU.
"""



import math

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
from trl.data_utils import (
    apply_chat_template,
    extract_prompt,
    is_conversational,
    maybe_extract_prompt,
)

from magpie_datasets.schema import MissingColumnError, to_conversations
from magpie_datasets.stages.formats import to_messages, to_preference, to_sharegpt

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Our multi-turn columns: rows with 3, 2 and 1 turns (None where a row has fewer turns).
TURNS = [
    ["What color is the sky?", "Blue.", "Why?", "Rayleigh scattering.", "At night?", "Black."],
    ["Name a prime.", "Seven.", "A bigger one?", "Eleven."],
    ["Say hi.", "Hi!"],
]


def turn_columns(turns=TURNS):
    columns = {}
    for k in range(max(len(t) for t in turns) // 2):
        suffix = "" if k == 0 else f"_{k + 1}"
        columns[f"instruction{suffix}"] = [t[2 * k] if len(t) > 2 * k else None for t in turns]
        columns[f"response{suffix}"] = [t[2 * k + 1] if len(t) > 2 * k else None for t in turns]
    return columns


def msg(role, content):
    return {"role": role, "content": content}


SYSTEM = "You are a terse assistant."
PAIRS = {  # full conversations, as the preference stage writes them
    "uuid": ["a", "b", "c"],
    "chosen": [
        [msg("user", "What color is the sky?"), msg("assistant", "Blue.")],
        [msg("system", SYSTEM), msg("user", "Name a prime."), msg("assistant", "Seven."),
         msg("user", "A bigger one?"), msg("assistant", "Eleven.")],
        [msg("user", "Say hi."), msg("assistant", "Hi!")],
    ],
    "rejected": [
        [msg("user", "What color is the sky?"), msg("assistant", "Green.")],
        [msg("system", SYSTEM), msg("user", "Name a prime."), msg("assistant", "Seven."),
         msg("user", "A bigger one?"), msg("assistant", "Nine.")],
        [msg("user", "Say hi."), msg("assistant", "Hi!")],
    ],
    "pair_issue": [None, None, "tie: all responses scored the same"],
}


@pytest.fixture(scope="module")
def tokenizer():
    texts = [text for turns in TURNS for text in turns] + [SYSTEM, "user assistant system Green. Nine."]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any text stays encodable
            show_progress=False,
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )


def tiny_model(tokenizer):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return AutoModelForCausalLM.from_config(config)


def training_args(config_class, tmp_path):
    return config_class(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, seed=0,
    )


def assert_trained(trainer):
    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), trainer.state.log_history


# ---------------------------------------------------------------- messages / ShareGPT


def test_to_messages_from_turn_columns():
    out = Dataset.from_dict(turn_columns()).map(to_messages, batched=True)
    assert out["messages"][0] == [
        msg("user", "What color is the sky?"), msg("assistant", "Blue."),
        msg("user", "Why?"), msg("assistant", "Rayleigh scattering."),
        msg("user", "At night?"), msg("assistant", "Black."),
    ]
    assert out["messages"][2] == [msg("user", "Say hi."), msg("assistant", "Hi!")]


def test_to_messages_reads_sharegpt_with_system_turn():
    conversation = [{"from": "system", "value": SYSTEM}] + to_conversations("Say hi.", "Hi!")
    # `conversations` wins over stale instruction/response columns: it is what MT extends.
    out = to_messages({"conversations": [conversation], "instruction": ["old"], "response": ["old"]})
    assert out == {"messages": [[msg("system", SYSTEM), msg("user", "Say hi."), msg("assistant", "Hi!")]]}


def test_round_trip_turn_columns_and_sharegpt():
    columns = turn_columns()
    expected = [to_conversations(*turns) for turns in TURNS]
    from_columns = Dataset.from_dict(columns).map(to_messages, batched=True, batch_size=2)
    assert from_columns.map(to_sharegpt, batched=True, batch_size=2)["conversations"] == expected

    sharegpt = expected[:2] + [[{"from": "system", "value": SYSTEM}] + expected[2]]
    messages = Dataset.from_dict({"conversations": sharegpt}).map(
        to_messages, batched=True, remove_columns=["conversations"]
    )
    assert messages.map(to_sharegpt, batched=True)["conversations"] == sharegpt


def test_to_sharegpt_from_turn_columns_without_messages():
    out = to_sharegpt(turn_columns(TURNS[2:]))
    assert out == {"conversations": [to_conversations("Say hi.", "Hi!")]}


def test_bad_conversations_raise_clearly():
    with pytest.raises(ValueError, match="'instruction_2' but no 'response_2'"):
        to_messages({"instruction": ["a"], "response": ["b"], "instruction_2": ["c"], "response_2": [None]})
    with pytest.raises(ValueError, match="ShareGPT turn from 'tool'"):
        to_messages({"conversations": [[{"from": "tool", "value": "{}"}]]})
    with pytest.raises(ValueError, match="'tool' message"):
        to_sharegpt({"messages": [[msg("tool", "{}")]]})
    with pytest.raises(MissingColumnError, match="to_messages needs column 'instruction'"):
        to_messages({"uuid": ["a"]})


def test_trl_data_utils_accept_messages(tokenizer):
    ds = Dataset.from_dict(turn_columns())
    row = ds.map(to_messages, batched=True, remove_columns=ds.column_names)[2]
    assert is_conversational(row)
    assert apply_chat_template(row, tokenizer) == {
        "text": "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
    }


def test_sft_trainer_trains_on_to_messages(tokenizer, tmp_path):
    # Published-style rows carry both turn columns and ShareGPT `conversations`.
    columns = {**turn_columns(), "conversations": [to_conversations(*turns) for turns in TURNS]}
    ds = Dataset.from_dict(columns)
    train = ds.map(to_messages, batched=True, remove_columns=ds.column_names)
    trainer = SFTTrainer(
        model=tiny_model(tokenizer), args=training_args(SFTConfig, tmp_path),
        train_dataset=train, processing_class=tokenizer,
    )
    # What TRL tokenized is our conversation under ChatML roles (not ShareGPT's human/gpt).
    assert tokenizer.decode(trainer.train_dataset[1]["input_ids"]) == (
        "<|im_start|>user\nName a prime.<|im_end|>\n<|im_start|>assistant\nSeven.<|im_end|>\n"
        "<|im_start|>user\nA bigger one?<|im_end|>\n<|im_start|>assistant\nEleven.<|im_end|>\n"
    )
    trainer.train()
    assert_trained(trainer)


# ---------------------------------------------------------------- preference


def test_to_preference_splits_at_last_user_turn():
    # batch_size=2: one batch keeps its rows, the next drops one (then all columns come back)
    out = Dataset.from_dict(PAIRS).map(to_preference, batched=True, batch_size=2)
    assert out["uuid"] == ["a", "b"]  # the tie row is dropped, the other columns stay aligned
    assert out["prompt"] == [
        [msg("user", "What color is the sky?")],
        [msg("system", SYSTEM), msg("user", "Name a prime."), msg("assistant", "Seven."),
         msg("user", "A bigger one?")],
    ]
    assert out["chosen"] == [[msg("assistant", "Blue.")], [msg("assistant", "Eleven.")]]
    assert out["rejected"] == [[msg("assistant", "Green.")], [msg("assistant", "Nine.")]]
    # Same split as TRL's own implicit-prompt extraction, and a second pass changes nothing.
    for raw, ours in zip(Dataset.from_dict(PAIRS).select(range(2)), out):
        theirs = extract_prompt({"chosen": raw["chosen"], "rejected": raw["rejected"]})
        assert theirs == {key: ours[key] for key in ("prompt", "chosen", "rejected")}
    assert out.map(to_preference, batched=True)[:] == out[:]


def test_to_preference_unpaired_rows_raise_without_drop():
    with pytest.raises(ValueError, match="1 row\\(s\\) have no preference pair \\('pair_issue' is set"):
        Dataset.from_dict(PAIRS).map(to_preference, batched=True, fn_kwargs={"drop_unpaired": False})
    paired_only = Dataset.from_dict(PAIRS).select(range(2))
    assert len(paired_only.map(to_preference, batched=True, fn_kwargs={"drop_unpaired": False})) == 2


def test_to_preference_rejects_pairs_that_do_not_share_a_prompt():
    chosen = [[msg("user", "Sky?"), msg("assistant", "Blue.")]]
    with pytest.raises(ValueError, match="differ before the last user turn"):
        to_preference({"chosen": chosen, "rejected": [[msg("user", "Sea?"), msg("assistant", "Blue.")]]})
    with pytest.raises(ValueError, match="continue the prompt with an assistant turn"):
        to_preference({"chosen": chosen, "rejected": [[msg("user", "Sky?")]]})
    with pytest.raises(ValueError, match="no message-list 'prompt'"):  # TRL cannot mix a string prompt in
        to_preference({"prompt": ["Sky?"], "chosen": [[msg("assistant", "Blue.")]],
                       "rejected": [[msg("assistant", "Red.")]]})
    with pytest.raises(ValueError, match="empty chosen/rejected"):
        to_preference({"chosen": [None], "rejected": [None]})


def test_trl_data_utils_accept_preference(tokenizer):
    out = Dataset.from_dict(PAIRS).map(to_preference, batched=True)
    row = out.select_columns(["prompt", "chosen", "rejected"])[1]
    assert is_conversational(row)
    assert maybe_extract_prompt(row) == row  # explicit prompt: TRL leaves it alone
    assert apply_chat_template(row, tokenizer) == {
        "prompt": f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nName a prime.<|im_end|>\n"
        "<|im_start|>assistant\nSeven.<|im_end|>\n<|im_start|>user\nA bigger one?<|im_end|>\n"
        "<|im_start|>assistant\n",
        "chosen": "Eleven.<|im_end|>\n",
        "rejected": "Nine.<|im_end|>\n",
    }


def test_dpo_trainer_trains_on_to_preference(tokenizer, tmp_path):
    # The preference stage may also write the instruction as a string `prompt`; TRL's DPOTrainer
    # fails on a string prompt next to message lists, so to_preference replaces it.
    ds = Dataset.from_dict({**PAIRS, "prompt": ["What color is the sky?", "A bigger one?", "Say hi."]})
    train = ds.map(to_preference, batched=True).select_columns(["prompt", "chosen", "rejected"])
    trainer = DPOTrainer(
        # A model made in memory has no path TRL could load the reference model from: pass one.
        model=tiny_model(tokenizer), ref_model=tiny_model(tokenizer),
        args=training_args(DPOConfig, tmp_path), train_dataset=train, processing_class=tokenizer,
    )
    first = trainer.train_dataset[0]
    assert tokenizer.decode(first["prompt_ids"]) == (
        "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.decode(first["chosen_ids"]) == "Blue.<|im_end|>\n"
    assert tokenizer.decode(first["rejected_ids"]) == "Green.<|im_end|>\n"
    trainer.train()
    assert_trained(trainer)
