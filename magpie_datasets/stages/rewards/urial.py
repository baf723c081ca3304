"""The few-shot prompt that makes a base model answer like an assistant (URIAL-style in-context
alignment, our own examples), and the stops that end its answer.

    >>> urial_prompt("How tall is Everest?").endswith("# User:\\nHow tall is Everest?\\n\\n# Assistant:\\n")
    True
"""

from __future__ import annotations

URIAL_HEADER = (
    "Below are conversations between a curious user and an AI assistant. The assistant gives "
    "accurate, well-organised and friendly answers, says so when it is not sure, and politely "
    "declines requests that could cause harm.\n\n"
)
USER_HEADER = "# User:\n"
ASSISTANT_HEADER = "# Assistant:\n"
URIAL_EXAMPLES = (
    (
        "Why do we see lightning before we hear thunder?",
        (
            "Light travels about a million times faster than sound. The flash reaches you almost "
            "instantly, while the sound covers roughly one kilometre every three seconds, so the "
            "thunder arrives later. Counting the seconds between the two and dividing by three gives "
            "the storm's distance in kilometres."
        ),
    ),
    (
        "Write a Python function that returns the largest number in a list.",
        (
            "Here is a short version that also handles an empty list:\n\n"
            "def largest(numbers):\n"
            "    if not numbers:\n"
            "        return None\n"
            "    return max(numbers)\n\n"
            "For example, largest([3, 9, 4]) returns 9."
        ),
    ),
    (
        "Give me three ideas for a rainy Sunday at home.",
        (
            "1. Cook something new together, such as fresh pasta or a curry.\n"
            "2. Build a blanket fort and watch a film series.\n"
            "3. Start a jigsaw puzzle or a board game tournament with snacks."
        ),
    ),
)
# The base model continues the pattern; the next example header ends its answer.
URIAL_STOP = ("\n# User:", "# User:", "\n# Assistant:")


def urial_prompt(instruction: str, bos: str | None = None) -> str:
    """The few-shot prompt around `instruction`, after the model's `bos` text when it has one."""
    shots = "".join(f"{USER_HEADER}{q}\n\n{ASSISTANT_HEADER}{a}\n\n" for q, a in URIAL_EXAMPLES)
    return f"{bos or ''}{URIAL_HEADER}{shots}{USER_HEADER}{instruction.strip()}\n\n{ASSISTANT_HEADER}"
