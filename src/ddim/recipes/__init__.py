"""Named training recipes, shipped as readable JSON files beside this module (``ddim train --recipe NAME``).

A recipe file holds a ``description``, the ``references`` it relies on, and the configuration fields it changes
from the defaults (the Keras example's), in ``config.json``'s sections: ``{"version": 4, "data": {...},
"train": {...}}``. ``keras-example`` changes nothing: it names the default recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_VERSION, ConfigError, RunConfig, upgrade_config_dict
from ..reading import read_json

RECIPES_FOLDER = Path(__file__).resolve().parent
DEFAULT_RECIPE = "keras-example"


class RecipeError(ValueError):
    """An unknown recipe name or a recipe file that is not a valid recipe."""


@dataclass(frozen=True)
class Recipe:
    """A named recipe: what it is for, what it relies on, and the fields it sets (section -> field -> value)."""

    name: str
    description: str
    references: tuple[str, ...]
    fields: dict[str, dict[str, Any]]

    def config(self) -> RunConfig:
        """The defaults with the recipe's fields applied."""
        return RunConfig.from_dict({"version": CONFIG_VERSION, **self.fields})

    def changes(self) -> list[tuple[str, str, Any]]:
        """``(section, field, value)`` for every value that differs from the defaults, in field order."""
        return self.config().changes()


def recipe_names() -> list[str]:
    """The shipped recipes' names, the default first."""
    names = sorted(path.stem for path in RECIPES_FOLDER.glob("*.json"))
    return sorted(names, key=lambda name: name != DEFAULT_RECIPE)


def load_recipe(name: str) -> Recipe:
    """The recipe called ``name``; :class:`RecipeError` names the known ones otherwise."""
    if name not in recipe_names():
        raise RecipeError(f"no recipe named {name!r}; the recipes are {', '.join(recipe_names())} (ddim recipes lists "
                          "them with every value they change)")
    path = RECIPES_FOLDER / f"{name}.json"
    try:
        data = read_json(path)
        description, references = data.pop("description"), tuple(data.pop("references", ()))
        fields = {section: values for section, values in upgrade_config_dict(data).items()}
        recipe = Recipe(name, str(description), references, fields)
        recipe.config()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError) as error:
        raise RecipeError(f"recipe file {path} is not a valid recipe: {error}") from error
    return recipe
