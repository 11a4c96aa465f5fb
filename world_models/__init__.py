"""Action-conditioned latent world models: predictor, WorldModel object, training module."""

from world_models.config import WorldModelConfig
from world_models.predictor import PREDICTORS, MLPPredictor
from world_models.transformer import TransformerPredictor
from world_models.world_model import CheckpointError, WorldModel

__all__ = ["PREDICTORS", "MLPPredictor", "TransformerPredictor", "WorldModelConfig", "WorldModel", "CheckpointError"]
