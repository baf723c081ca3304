"""Running stages exactly once: resumable checkpoints, and a Ray cluster."""
