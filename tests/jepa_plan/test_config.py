import pytest
from omegaconf import OmegaConf

from jepa_plan.config import ConfigError, load_config


def test_defaults_resolve():
    cfg = load_config([])
    assert cfg.env.name == "two_rooms" and cfg.env.resolution == 64
    assert cfg.output_dir == "outputs/train/two_rooms"  # interpolation resolved
    assert cfg.data.dir == "data/two_rooms"
    assert cfg.stage == "all" and cfg.logger.wandb.mode == "offline"
    assert OmegaConf.is_readonly(cfg)


def test_dotlist_and_group_overrides():
    cfg = load_config(["env=two_rooms", "encoder.depth=4", "trainer.max_steps=2000", "env.resolution=32",
                       "logger.wandb.mode=disabled", "stage=encoder"])
    assert cfg.encoder.depth == 4 and cfg.trainer.max_steps == 2000 and cfg.env.resolution == 32
    assert cfg.stage == "encoder"


@pytest.mark.parametrize("item, message", [
    ("encoder.dpeth=4", "unknown config key 'encoder.dpeth'"),
    ("trainr.max_steps=3", "unknown config key 'trainr"),
    ("env.resolutoin=3", "unknown config key 'env.resolutoin'"),
])
def test_unknown_key_is_named(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config([item])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys here: .*depth"):
        load_config(["encoder.dpeth=4"])


@pytest.mark.parametrize("item, message", [
    ("env=three_rooms", "unknown env 'three_rooms'; registered env names: pointmaze_medium, pointmaze_umaze, pusht, two_rooms, tworoom"),
    ("encoder=resnet", "unknown encoder 'resnet'; registered encoder names: keypoints, vit"),
    ("world_model=rnn", "unknown world_model 'rnn'; registered world_model names: mlp, transformer"),
    ("world_model.name=rnn", "unknown world_model 'rnn'"),
])
def test_unknown_component_lists_registered(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config([item])


@pytest.mark.parametrize("item, message", [
    ("encoder.depth=four", "encoder.depth"),
    ("stage=planner", "stage='planner' is not one of encoder, world_model, all"),
    ("logger.wandb.mode=sometimes", "logger.wandb.mode='sometimes'"),
    ("data.clip_len=1", "data.clip_len=1"),
    ("trainer.max_minutes=0", r"trainer.max_minutes=0.0 must be positive"),
    ("encoder_seeds=[1,1]", r"encoder_seeds=\[1, 1\] must be a non-empty list of distinct integers"),
    ("encoder_select=loss", r"encoder_select='loss' must be a validation metric"),
    ("noequals", "not key=value"),
])
def test_bad_values_are_named(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config([item])


def test_typo_in_a_yaml_file_names_file_and_key(tmp_path):
    (tmp_path / "train.yaml").write_text("encoder:\n  widht: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'encoder.widht' in .*train.yaml"):
        load_config([], config_dir=tmp_path)
