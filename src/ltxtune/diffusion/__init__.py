"""The diffusion math: flow matching, timestep samplers, token positions and types, the sampling loop."""
