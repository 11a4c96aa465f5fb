"""Train a V-JEPA encoder and an action-conditioned world model on video with actions.

    python train.py                                   # two_rooms default: collect data, both stages
    python train.py stage=encoder                     # or stage=world_model (needs encoder.pt)
    python train.py env=two_rooms encoder.depth=4 trainer.max_steps=2000
    python train.py resume=true                       # continue from the last checkpoints
    python train.py trainer.devices=2 trainer.strategy=ddp   # several GPUs (or CPU processes)
    python train.py logger.wandb.mode=online          # W&B is offline by default

Config: configs/train.yaml on top of the dataclasses in jepa_plan/config.py; any key can be
overridden as key=value. Files go to output_dir (default outputs/train/<env>).
"""

from jepa_plan.training import main

if __name__ == "__main__":
    main()
