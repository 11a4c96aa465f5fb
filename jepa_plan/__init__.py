"""jepa_plan: train V-JEPA world models on video with actions and plan to image goals in their latent space."""
