"""What validation measures and shows: the fixed-draw validation loss and the validation clips."""
