"""``ddim recipes``: the named training recipes, what each is for and every value it changes."""

from __future__ import annotations

import argparse
import textwrap

from ..recipes import DEFAULT_RECIPE, RECIPES_FOLDER, load_recipe, recipe_names
from .config_options import CONFIG_OPTIONS, shown


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("recipes", help=help_text,
                                 description="The recipes 'ddim train --recipe NAME' starts from, with every value "
                                 "each one changes from the defaults (options given to ddim train override them).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"only these recipes ({', '.join(recipe_names())}; default: all)")
    parser.set_defaults(parser=parser, run=run)


def describe(name: str) -> str:
    """A recipe as ``ddim recipes`` prints it: name, description, its options, references and file."""
    recipe = load_recipe(name)
    lines = [f"{name}{' (the default)' if name == DEFAULT_RECIPE else ''}"]
    lines += textwrap.wrap(recipe.description, 100, initial_indent="  ", subsequent_indent="  ")
    changes = recipe.changes()
    if not changes:
        lines.append("  changes no default")
    for section, field, value in changes:
        lines.append(f"  {CONFIG_OPTIONS[(section, field)][0]} {shown(value)}")
    lines += [f"  source: {reference}" for reference in recipe.references]
    lines.append(f"  file: {RECIPES_FOLDER / (name + '.json')}")
    return "\n".join(lines)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    unknown = [name for name in args.names if name not in recipe_names()]
    if unknown:
        parser.error(f"no recipe named {unknown[0]!r}; the recipes are {', '.join(recipe_names())}")
    print("\n\n".join(describe(name) for name in (args.names or recipe_names())))
    return 0
