"""ltxtune: Hydra-composed fine-tuning of Lightricks' LTX-2 audio-video transformer."""

from ltxtune import moved

__version__ = "0.1.0"

moved.install()  # the import paths of before the subpackages (ltxtune.samplers, ...) keep working
