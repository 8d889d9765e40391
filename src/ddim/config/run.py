"""The whole run configuration: saved as ``config.json`` in the run folder and in every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_text
from ..reading import read_json
from .fields import ConfigError
from .sections import DataConfig, ModelConfig, TrainConfig
from .versions import CONFIG_VERSION, upgrade_config_dict


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved as ``config.json`` and in every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists), marked with :data:`CONFIG_VERSION`."""
        return {"version": CONFIG_VERSION, **json.loads(json.dumps(dataclasses.asdict(self)))}

    @classmethod
    def from_dict(cls, data: dict[str, Any], complete: bool = False) -> RunConfig:
        """Rebuild a config from :meth:`to_dict`'s output (or an older version's); unknown keys are an error.

        ``complete``: every section and field must be present (a checkpoint's config: a missing field would
        silently take today's default, e.g. a velocity model sampled as a noise model).
        """
        if not isinstance(data, dict):
            raise ConfigError("config", "must be an object of sections (model, data, train), "
                              f"got {type(data).__name__}")
        data = upgrade_config_dict(data)
        unknown = set(data) - set(SECTIONS)
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown configuration section")
        kwargs = {}
        for name, section_cls in SECTIONS.items():
            if not isinstance(data.get(name, {}), dict):
                raise ConfigError(name, f"must be an object of fields, got {type(data[name]).__name__}")
            values = dict(data.get(name, {}))
            known = {f.name for f in dataclasses.fields(section_cls)}
            extra = set(values) - known
            if extra:
                raise ConfigError(f"{name}.{sorted(extra)[0]}", "unknown configuration field")
            missing = [field_name for field_name in known if field_name not in values]
            if complete and missing:
                raise ConfigError(f"{name}.{sorted(missing)[0]}", "is missing (a checkpoint's configuration must "
                                  "name every field)")
            try:
                kwargs[name] = section_cls(**values)
            except ConfigError as error:  # name the section too: model.widths, train.lr
                raise ConfigError(f"{name}.{error.field}", error.message) from None
        if complete and kwargs["model"].conditional and not kwargs["model"].class_names:
            raise ConfigError("model.class_names", "is empty: a conditional model's checkpoint records its classes")
        return cls(**kwargs)

    def changes(self, base: RunConfig | None = None) -> list[tuple[str, str, Any]]:
        """``(section, field, value)`` for every value that differs from ``base`` (default: the defaults, the Keras
        example's), in section and field order."""
        base = base if base is not None else RunConfig()
        found = []
        for section in SECTIONS:
            mine, theirs = getattr(self, section), getattr(base, section)
            found += [(section, spec.name, getattr(mine, spec.name)) for spec in dataclasses.fields(mine)
                      if getattr(mine, spec.name) != getattr(theirs, spec.name)]
        return found

    def to_json(self) -> str:
        """The config as indented JSON (``config.json``'s format)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Write the config as indented JSON, atomically."""
        write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read a config written by :meth:`save`."""
        return cls.from_dict(read_json(path))  # a ReadError (a ValueError) for a damaged or planted file


#: The sections of a run configuration, by name: config.json's keys, the CLI's option groups, the API's fields.
SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
