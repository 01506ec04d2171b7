"""Video-to-video (IC-LoRA): the model sees a clean reference clip and learns to generate the target from it."""

from __future__ import annotations

from dataclasses import replace

from ltxtune.strategies.base import Given, check_probability
from ltxtune.strategies.conditions import FirstFrame, Reference
from ltxtune.strategies.flexible import Flexible, VideoTrack


class VideoToVideo(Flexible):
    """The sequence is ``[clean reference | noisy target]``; only the target is scored.

    The reference may be smaller than the target by an integer factor (``reference_spatial_scale_factor``
    and ``reference_downscale_factor`` in the checkpoint metadata when it is not 1). A fraction
    ``first_frame_p`` of the samples also get the target's first frame, so the LoRA serves image+reference
    prompts too.
    """

    TRAINING_KNOBS = ("first_frame_p",)

    def __init__(
        self,
        first_frame_p: float = 0.1,
        latents_dir: str = "latents",
        reference_latents_dir: str = "reference_latents",
        conditions_dir: str = "conditions",
    ) -> None:
        check_probability("first_frame_p", first_frame_p)
        conditions = [FirstFrame(first_frame_p), Reference(reference_latents_dir)]
        super().__init__(video=VideoTrack(True, latents_dir, conditions), conditions_dir=conditions_dir)

    def givens(self) -> tuple[Given, ...]:
        """The first frame, set by ``first_frame_p``, and the reference, always given."""
        first_frame, reference = super().givens()
        return replace(first_frame, setting="first_frame_p"), replace(reference, setting=None)
