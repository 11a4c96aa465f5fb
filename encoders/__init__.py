"""Video encoders and V-JEPA pretraining (a wing: imports neither jepa_plan nor world_models).

`ENCODERS` maps config names to (encoder class, config class); `EncoderConfig.name` selects one.
"""

from encoders.diagnostics import (
    RidgeProbe,
    distance_rank_correlation,
    effective_rank,
    feature_std,
    spearman,
)
from encoders.ema import ema_update, momentum_schedule
from encoders.keypoints import KeypointDecoder, KeypointEncoder
from encoders.masking import DEFAULT_BLOCKS, sample_multiblock_masks
from encoders.predictor import MaskedPredictor
from encoders.vit import VideoViT, frames_to_input, sincos_pos_embed_3d
from encoders.vjepa import EncoderConfig, VJEPAModule, build_encoder

# name -> (encoder class, config class): the shape of every component table (planners.PLANNERS).
ENCODERS = {"vit": (VideoViT, EncoderConfig), "keypoints": (KeypointEncoder, EncoderConfig)}

__all__ = [
    "ENCODERS",
    "DEFAULT_BLOCKS",
    "EncoderConfig",
    "KeypointDecoder",
    "KeypointEncoder",
    "MaskedPredictor",
    "RidgeProbe",
    "VJEPAModule",
    "VideoViT",
    "build_encoder",
    "distance_rank_correlation",
    "effective_rank",
    "ema_update",
    "feature_std",
    "frames_to_input",
    "momentum_schedule",
    "sample_multiblock_masks",
    "sincos_pos_embed_3d",
    "spearman",
]
