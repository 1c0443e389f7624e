"""What a run's log says about it beyond its metrics: how its β controller
tracked the set point, and when its latents emerged."""

from .controller import controller_quality
from .emergence import Emergence

__all__ = ["controller_quality", "Emergence"]
