"""Typed configuration: every default is the Keras example's, every field can be overridden.

A run's configuration is written to ``config.json`` in the run folder and into every checkpoint, so
a checkpoint alone rebuilds its model (``RunConfig.from_dict``). Each dataclass validates itself in
``__post_init__`` and raises :class:`ConfigError` naming the offending field; the CLI translates field
names into option names (``batch_size`` -> ``--batch-size``).

The fields are the single source of the command line: each carries its help text (and choices, or an
option name other than ``--field-name``) in its metadata through :func:`option`, and ``ddim.cli.options``
derives every option, with its type from the annotation, from them.
"""

from .fields import (BATCHNORM_MODES, CLASS_CONDITIONING, COMPILE_MODES, LOSSES, LR_SCHEDULES, MAX_EMA_STD, PRECISIONS,
                     PREDICTION_TARGETS, ConfigError, option, recorded)
from .run import SECTIONS, RunConfig
from .sections import DataConfig, ModelConfig, TrainConfig
from .versions import (ADDED_IN_VERSION_3, ADDED_IN_VERSION_4, ADDED_IN_VERSION_5, CONFIG_VERSION, upgrade_config_dict,
                       with_added_fields)

__all__ = ["ADDED_IN_VERSION_3", "ADDED_IN_VERSION_4", "ADDED_IN_VERSION_5", "BATCHNORM_MODES", "CLASS_CONDITIONING",
           "COMPILE_MODES", "CONFIG_VERSION", "ConfigError", "DataConfig", "LOSSES", "LR_SCHEDULES", "MAX_EMA_STD",
           "ModelConfig", "PRECISIONS", "PREDICTION_TARGETS", "RunConfig", "SECTIONS", "TrainConfig", "option",
           "recorded", "upgrade_config_dict", "with_added_fields"]
