"""Conversation ids and ShareGPT turns, as the published datasets write them."""

from __future__ import annotations

import uuid
from typing import Any


def conversation_uuid(*parts: Any) -> str:
    """uuid5 (DNS namespace) of a conversation id built from `parts`, as in the published data."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "/".join(str(p) for p in parts)))


def to_conversations(*turns: str) -> list[dict[str, str]]:
    """ShareGPT turns from alternating user/assistant texts.

    >>> to_conversations("Hi?", "Hello!")
    [{'from': 'human', 'value': 'Hi?'}, {'from': 'gpt', 'value': 'Hello!'}]
    """
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)]
