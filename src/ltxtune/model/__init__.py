"""The only package that builds ltx-core's transformer: the tiny embedded model, real checkpoints, LoRA."""
