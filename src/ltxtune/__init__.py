"""ltxtune: Hydra-composed fine-tuning of Lightricks' LTX-2 audio-video transformer."""

__version__ = "0.1.0"
