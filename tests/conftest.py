"""What every test shares: no network (the Hugging Face Hub is never reached), and fixtures
used by several modules."""

from __future__ import annotations

import os

import pytest

# Before any test module imports transformers, datasets or huggingface_hub: they read it at import.
# Tests that check the online path patch it off themselves (monkeypatch), against a loopback server.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def one_torch_thread():
    """One torch thread while a model runs: on a CPU shared with other jobs two spinning OpenMP
    threads can be many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
