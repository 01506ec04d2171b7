"""Training strategies: what data a mode reads, how a batch becomes model inputs, and the loss."""
