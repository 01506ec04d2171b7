"""The training step measured on one GPU: ``python -m ltxtune.app.gpubench`` (docs/performance.md, "GPU step")."""
