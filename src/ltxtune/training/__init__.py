"""One training job: the parts a config builds, the loop, checkpoints, optimizers, trackers, the run's result."""
