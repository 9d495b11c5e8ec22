from pathlib import Path

import pytest
import yaml

from supcon.config import Config, ConfigError, build_config, list_presets, load_config, save_config


@pytest.mark.parametrize("preset", list_presets())
def test_every_shipped_preset_validates(preset):
    cfg = build_config(preset)
    assert cfg.method in ("supcon", "simclr", "ce")
    assert cfg.optim.lr > 0 and cfg.loss.temperature > 0 and cfg.data.n_views >= 1


def test_paper_cifar_recipe_values():
    cfg = build_config("cifar10-supcon")
    assert (cfg.model.encoder, cfg.train.batch_size, cfg.optim.lr, cfg.loss.temperature, cfg.train.epochs) == (
        "resnet50", 1024, 0.5, 0.1, 1000)


def test_method_defaults_fill_only_unset_fields():
    assert build_config(None, overrides={"method": "simclr"}).loss.temperature == 0.5
    assert build_config(None, overrides={"method": "ce"}).data.n_views == 1
    cfg = build_config(None, overrides={"method": "simclr"}, dotted=["loss.temperature=0.2"])
    assert cfg.loss.temperature == 0.2


def test_dotted_overrides_are_typed():
    cfg = build_config(None, dotted=["optim.lr=0.3", "train.epochs=7", "data.per_class=4", "train.channels_last=true"])
    assert (cfg.optim.lr, cfg.train.epochs, cfg.data.per_class, cfg.train.channels_last) == (0.3, 7, 4, True)
    assert isinstance(build_config(None, dotted=["optim.lr=1"]).optim.lr, float)


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", r"unknown config key 'optim.lrr' \(did you mean 'optim.lr'\?\)"),
    ("nope=1", "unknown config key 'nope'"),
    ("optim.lr=fast", "optim.lr must be float or null, got 'fast'"),
    ("train.epochs=1.5", "train.epochs must be int, got 1.5"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("optim.name=adam", "unknown optim.name 'adam'"),
    ("method=supcn", "did you mean 'supcon'"),
    ("train.seed", "is not key=value"),
    ("loss.temperature=-1", "loss.temperature must be > 0"),
    ("train.batch_size=null", "train.batch_size may not be null"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, dotted=[override])


def test_yaml_file_round_trip(tmp_path):
    cfg = build_config(None, dotted=["method=ce", "optim.lr=0.2", "data.name=digits"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert build_config(str(tmp_path / "c.yaml")) == cfg


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        build_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(str(bad))
    bad.write_text(yaml.safe_dump({"optim": 3}))
    with pytest.raises(ConfigError, match="optim must be a mapping"):
        build_config(str(bad))


def test_config_is_not_mutated_by_building():
    base = Config()
    build_config(None, dotted=["optim.lr=0.9"])
    assert base.optim.lr is None and Config().optim.lr is None


@pytest.mark.parametrize("value, ok", [(16, True), ("null", True), (0, False), (-3, False), (1.5, False)])
def test_image_size_is_a_positive_int_or_null(value, ok):
    if ok:
        cfg = build_config(None, dotted=[f"data.image_size={value}"])
        assert cfg.data.image_size == (None if value == "null" else value)
    else:
        with pytest.raises(ConfigError, match="data.image_size must be"):
            build_config(None, dotted=[f"data.image_size={value}"])
    assert build_config(None).data.image_size is None  # default: the data set's own size


@pytest.mark.parametrize("method, views, message", [
    ("ce", 2, "data.n_views=2 cannot work with method ce"),
    ("simclr", 1, "data.n_views=1 cannot work with method simclr"),
])
def test_view_counts_that_cannot_work_are_refused(method, views, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, overrides={"method": method, "data.n_views": views})


@pytest.mark.parametrize("method, views", [("ce", 1), ("simclr", 2), ("simclr", 4), ("supcon", 1), ("supcon", 3)])
def test_view_counts_that_work_are_accepted(method, views):
    assert build_config(None, overrides={"method": method, "data.n_views": views}).data.n_views == views


@pytest.mark.parametrize("method, views", [("supcon", 2), ("simclr", 2), ("ce", 1)])
def test_method_defaults_pass_the_view_checks(method, views):
    assert build_config(None, overrides={"method": method}).data.n_views == views


def _is_abs(value, folder) -> bool:
    return Path(value).is_absolute() and Path(value).samefile(folder)


def test_existing_folder_paths_become_absolute(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "digits").mkdir()  # a folder named like a registered set
    monkeypatch.chdir(tmp_path)
    cfg = build_config(None, overrides={"data.name": "./imgs", "data.data_dir": "files"})
    assert _is_abs(cfg.data.name, tmp_path / "imgs") and _is_abs(cfg.data.data_dir, tmp_path / "files")
    assert _is_abs(build_config(None, dotted=["data.name=imgs"]).data.name, tmp_path / "imgs")
    assert build_config(None, overrides={"data.name": "digits"}).data.name == "digits"  # the registered set
    assert _is_abs(build_config(None, overrides={"data.name": "./digits"}).data.name, tmp_path / "digits")
    missing = build_config(None, overrides={"data.name": "./nothing", "data.data_dir": "nowhere"})
    assert (missing.data.name, missing.data.data_dir) == ("./nothing", "nowhere")  # left for the loader to report
    saved = tmp_path / "c.yaml"
    save_config(cfg, saved)
    monkeypatch.chdir(tmp_path / "files")
    assert _is_abs(load_config(saved).data.name, tmp_path / "imgs")


def test_contrast_mode_is_a_config_key_that_reaches_the_method():
    from supcon.engine.components import method_from_config

    cfg = build_config(None, dotted=["loss.contrast_mode=one"])
    assert cfg.loss.contrast_mode == "one" and method_from_config(cfg).criterion.contrast_mode == "one"
    memory = build_config(None, dotted=["loss.contrast_mode=one", "loss.memory=8"])
    assert method_from_config(memory).criterion.contrast_mode == "one"
    assert method_from_config(build_config(None)).criterion.contrast_mode == "all"  # the paper's default
    with pytest.raises(ConfigError, match=r"unknown loss.contrast_mode 'some'.*valid: all, one"):
        build_config(None, dotted=["loss.contrast_mode=some"])
    with pytest.raises(ConfigError, match="loss.contrast_mode=one is for method supcon, got method simclr"):
        build_config(None, dotted=["method=simclr", "loss.contrast_mode=one"])
