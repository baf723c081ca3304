"""Running stages exactly once: resumable checkpoints, and a Ray cluster; `probe`, step 1 sampled before a run."""
