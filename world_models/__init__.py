"""Action-conditioned latent world models: predictor, WorldModel object, training module."""

from world_models.predictor import PREDICTORS, MLPPredictor
from world_models.world_model import CheckpointError, WorldModel

__all__ = ["PREDICTORS", "MLPPredictor", "WorldModel", "CheckpointError"]
