"""Make published result files portable: no absolute path of the machine they were measured on.

    python scripts/portable_results.py docs/results/*.json docs/results/study/study.json

Every string in the JSON files that is an absolute path is rewritten to what a reader can use: a path relative to
the repository when it lies inside it; ``PACKAGE/FILE`` for a file of an installed package (the Inception
weights); ``RUN/checkpoints/STEP`` for a checkpoint (the run's name, not where it was kept); the bare name for
anything else (the data folder, whose pixels the ``fingerprint`` beside it identifies; a cache file). Files are
rewritten in place; running it again changes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePosixPath
from typing import Any

from ddim.files import write_text

REPO = Path(__file__).resolve().parents[1]


def portable_path(text: str, repo: Path = REPO) -> str:
    """One absolute path as a reader can use it (see the module's text); anything else unchanged."""
    if not text.startswith("/") or "\n" in text or " " in text:
        return text
    path = PurePosixPath(text)
    parts = path.parts
    if "site-packages" in parts:  # before the repository: its virtual environment lies inside it
        return str(PurePosixPath(*parts[parts.index("site-packages") + 1:]))
    if path.is_relative_to(repo):
        return str(path.relative_to(repo))
    if "checkpoints" in parts and parts.index("checkpoints") > 1:
        return str(PurePosixPath(*parts[parts.index("checkpoints") - 1:]))
    return path.name


def portable(value: Any, repo: Path = REPO) -> Any:
    """``value`` (a JSON document) with every absolute path made portable."""
    if isinstance(value, str):
        return portable_path(value, repo)
    if isinstance(value, list):
        return [portable(item, repo) for item in value]
    if isinstance(value, dict):
        return {key: portable(item, repo) for key, item in value.items()}
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON files to rewrite in place")
    files = parser.parse_args(argv).files
    documents = []
    for file in files:  # every file read before any is rewritten: a wrong name leaves all of them as they were
        try:
            documents.append(json.loads(file.read_text()))
        except OSError as error:
            parser.error(f"{file}: {error.strerror or error}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            parser.error(f"{file} is not a JSON file ({error})")
    for file, document in zip(files, documents):
        write_text(file, json.dumps(portable(document), indent=2) + "\n")
        print(f"portable: {file}")


if __name__ == "__main__":
    main()
