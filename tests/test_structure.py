"""The code's shape, checked: no import cycle, no file over 300 lines, each run-folder name spelt in one module,
imports at the top except the heavy optional ones, and ``ddim --help`` / ``--version`` without PyTorch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "ddim"
MAX_LINES = 300
#: Modules a function may import where it needs them (each is heavy and optional, or deferred on purpose).
LOCAL_IMPORTS_ALLOWED = {"gradio", "playwright.sync_api", "scipy.io", "torch.utils.tensorboard",
                         "ddim.demo.server", "ddim.cli.errors", "ddim.data"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolved(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of a ``from X import ...`` in ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def top_level_imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """The ddim modules ``module`` imports when it is imported (module-level statements only)."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ddim"))
        elif isinstance(node, ast.ImportFrom):
            target = resolved(node, module, is_package)
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
    return {name for name in found if name in known and name != module}


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every import cycle of a module graph found by a depth-first walk (a package importing its own submodules
    from ``__init__`` is not one)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if other.startswith(name + "."):  # a package importing its own submodule
                continue
            if state.get(other) == 1 and not name.startswith(other + "."):
                cycles.append(" -> ".join(trail[trail.index(other):] + [other]))
            elif other not in state:
                visit(other, trail + [other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle() -> None:
    """A module never imports, directly or through others, a module that imports it."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "p": {"p.x"}, "p.x": set()}) == ["a -> b -> c -> a"]
    known = modules()
    graph = {name: top_level_imports(path, name, known) for name, path in known.items()}
    assert "ddim.layout" in graph["ddim.checkpoint"]  # the walk sees relative imports
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_source_file_is_longer_than_300_lines() -> None:
    long = {str(path.relative_to(REPO)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_each_run_folder_name_is_spelt_in_one_module() -> None:
    names = ("config.json", "history.csv", "losses.png", "metrics.jsonl", "samples", "epoch_", "step_", "best",
             "tensorboard", "distributed.json", "model.safetensors", "training_state.pt", "checkpoints")
    where = {name: sorted(module for module, path in modules().items() if name in code_strings(path))
             for name in names}
    assert all(found == ["ddim.layout"] for found in where.values()), where


def test_imports_are_at_the_top_except_the_heavy_optional_ones() -> None:
    """Except, too, in the command-line modules: a command imports its work (PyTorch) when it runs, so that its
    parser, and ``ddim COMMAND --help``, need none (the test below)."""
    local = []
    for module, path in modules().items():
        if module.startswith("ddim.cli."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        local += [f"{module}: {a.name}" for a in inner.names if a.name not in LOCAL_IMPORTS_ALLOWED]
                    elif isinstance(inner, ast.ImportFrom):
                        target = resolved(inner, module, path.name == "__init__.py")
                        if target not in LOCAL_IMPORTS_ALLOWED:
                            local.append(f"{module}: from {target}")
    assert not local, local


def test_help_and_version_answer_without_importing_pytorch() -> None:
    code = ("import sys; from ddim.cli import main\n"
            "for argv in ([], ['--version'], ['--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "False"
    assert "recipes" in result.stdout and "ddim " in result.stdout


def test_every_commands_help_answers_without_importing_pytorch() -> None:
    """``ddim COMMAND --help`` for every command, and a usage error, in one process: no PyTorch, torchvision,
    matplotlib or Pillow is loaded (help took seconds when each command's parser imported its work)."""
    from ddim.cli import COMMANDS

    code = ("import sys; from ddim.cli import main\n"
            f"for argv in [[name, '--help'] for name in {list(COMMANDS)!r}] + [['sample', '--steps', 'x']]:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'PIL') if m in sys.modules), "
            "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr[-2000:]
    assert result.stdout.count("usage: ddim ") == len(COMMANDS)  # every command printed its help
    assert "--reference {validation,train,all}" in result.stdout and "--kid-size {75,299}" in result.stdout
    assert "--sampler {ddim,ddpm,dpmpp-2m,heun}" in result.stdout and "(default: pretrained)" in result.stdout
    assert "ddim sample: error: argument --steps" in result.stderr  # a usage error, without PyTorch too
