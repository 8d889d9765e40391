"""Configuration versions: what each version added or changed, and reading any earlier version in today's terms
(an old run resumes and an old checkpoint loads with the computation it had)."""

from __future__ import annotations

from typing import Any

from .fields import ConfigError
from .sections import ModelConfig, TrainConfig


CONFIG_VERSION = 5
"""Version 5 adds ``model.class_conditioning`` (a conditional network takes its class in every residual block; earlier
ones at the input only). Version 4 adds the levers of the better recipes (``data.flip``, ``train.ema_std``,
``train.lr_schedule``, ``train.lr_warmup_steps``, ``train.lr_decay_steps``, ``train.lr_floor``). Version 3 adds
class-conditional training (``model.conditional``, ``model.class_names``, ``train.class_dropout``,
``train.guidance``). Version 2: ``train.weight_decay`` is the per-step decay (the Keras example's meaning). Version 1
(no ``version`` key) meant PyTorch's ``lr * weight_decay``. :func:`upgrade_config_dict` converts both."""

#: Fields added by version 3, with the values that give an earlier version's (unconditional) model.
ADDED_IN_VERSION_3: dict[str, dict[str, Any]] = {
    "model": {"conditional": False, "class_names": []},
    "train": {"class_dropout": 0.1, "guidance": 1.0},
}


#: Fields added by version 4, with the values that give an earlier version's computation (the Keras example's).
ADDED_IN_VERSION_4: dict[str, dict[str, Any]] = {
    "data": {"flip": False},
    "train": {"ema_std": None, "lr_schedule": "constant", "lr_warmup_steps": 0, "lr_decay_steps": None,
              "lr_floor": 0.0},
}


#: Fields added by version 5, with the values that give an earlier version's network. ``class_conditioning`` means
#: something for conditional networks only: an unconditional one gets today's default (see :func:`_completed`), so
#: that an old unconditional run and one written today describe the same network alike.
ADDED_IN_VERSION_5: dict[str, dict[str, Any]] = {
    "model": {"class_conditioning": "input"},
}
ADDED_BY_VERSION = ((3, ADDED_IN_VERSION_3), (4, ADDED_IN_VERSION_4), (5, ADDED_IN_VERSION_5))


def _completed(section: str, values: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the ``added`` fields it lacks (an unconditional model's class_conditioning: the default)."""
    completed = {**added, **values}
    if section == "model" and "class_conditioning" in added and "class_conditioning" not in values \
            and not completed.get("conditional"):
        completed["class_conditioning"] = ModelConfig.class_conditioning
    return completed


def with_added_fields(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A section as a writer of any version wrote it, completed with the fields later versions added (at the values
    that keep the earlier computation), e.g. a model configuration in the metadata of ddim 0.2's weights."""
    added = {name: value for _, fields in ADDED_BY_VERSION for name, value in fields.get(section, {}).items()}
    return _completed(section, values, added)


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A config dictionary of any version in the current version's terms (the ``version`` key removed).

    Version 1 stored ``weight_decay`` in PyTorch's meaning (each step subtracts ``lr * weight_decay * w``);
    the same computation is ``weight_decay = lr * old`` now, so an old run resumes unchanged.
    """
    data = dict(data)
    version = data.pop("version", 1)
    if version not in range(1, CONFIG_VERSION + 1) or isinstance(version, bool):
        raise ConfigError("version", f"configuration version {version!r} is not one this ddim reads "
                          f"(1 to {CONFIG_VERSION}); a newer ddim wrote it")
    if version == 1 and isinstance(data.get("train", {}), dict):
        train = dict(data.get("train", {}))
        old_default = 1e-4  # version 1's default, in PyTorch's meaning
        train["weight_decay"] = train.get("lr", TrainConfig.lr) * train.get("weight_decay", old_default)
        data["train"] = train
    for added_in, fields in ADDED_BY_VERSION:  # an earlier version's sections name every field but those added since
        if version < added_in:
            for section, added in fields.items():
                if isinstance(data.get(section), dict):
                    data[section] = _completed(section, data[section], added)
    return data


def versioned_partial(data: Any) -> Any:
    """A ``--config`` file's dictionary, marked as the current version when it holds no version-1 value.

    Without a ``version`` key a file is version 1, whose only difference is ``train.weight_decay``'s meaning:
    a partial file that omits it is therefore read in today's terms (missing fields keep today's defaults), a
    complete one (an old run's config.json) as version 1, and a partial one that gives it must say which.
    """
    if not isinstance(data, dict) or "version" in data:
        return data
    train = data.get("train")
    if not (isinstance(train, dict) and "weight_decay" in train):
        return {"version": CONFIG_VERSION, **data}
    if set(data) == {"model", "data", "train"}:
        return data
    raise ConfigError("version", f'train.weight_decay is given without a "version": add "version": {CONFIG_VERSION} '
                      "for the per-step decay (today's meaning) or \"version\": 1 for PyTorch's lr * weight_decay")
