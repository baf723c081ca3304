"""The `transformers` engine: batched sampling with a KV cache, on any torch device.

Modules: `engine` (`TransformersEngine`: load, generate, continuous batching, prefill, decode
steps), `kv_cache` (the slot KV cache and the batch state), `sampling` (pure sampling maths on
tensors), `device` (dtype, CPU capabilities, free memory, forked-worker threads).
"""

from .engine import TransformersEngine

__all__ = ["TransformersEngine"]
