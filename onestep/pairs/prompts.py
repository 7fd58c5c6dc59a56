"""Prompt lists for teacher-pair collection: typed text (one prompt per line) and/or a prompt file
(.txt one per line; .tsv/.csv with a prompt column, e.g. PartiPrompts.tsv's `Prompt`)."""
from __future__ import annotations

import csv
import os


class PromptFileError(ValueError):
    """A prompt file or prompt list that cannot be used, with a message naming the problem."""


def read_prompts(text: str = "", path: str | None = None, column: str = "prompt") -> list[str]:
    """Prompts from the typed text, then from the file; blank lines dropped; refuses an empty result."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if path:
        prompts += read_prompt_file(path, column)
    if not prompts:
        raise PromptFileError("the prompt list is empty: type prompts (one per line) or give a prompt file")
    return prompts


def read_prompt_file(path: str, column: str = "prompt") -> list[str]:
    """Prompts of a .txt (one per line) or .tsv/.csv file (the column named `column`, any case)."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise PromptFileError(f"prompt file {name!r} not found")
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if ext in (".tsv", ".csv"):
                return _table_prompts(f, "\t" if ext == ".tsv" else ",", column, name)
            if ext in (".txt", ""):
                return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise PromptFileError(f"prompt file {name!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:  # NUL bytes, a field over csv's size limit, an unclosed quote
        raise PromptFileError(f"prompt file {name!r} is not a readable {ext[1:]} table: {e}") from None
    except OSError as e:
        raise PromptFileError(f"prompt file {name!r} cannot be read: {e.strerror or e}") from None
    raise PromptFileError(f"prompt file {name!r}: use .txt (one prompt per line), .tsv or .csv, not {ext!r}")


def _table_prompts(f, delimiter: str, column: str, name: str) -> list[str]:
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise PromptFileError(f"prompt file {name!r} is empty")
    lowered = [h.strip().lower() for h in header]
    if column.lower() not in lowered:
        raise PromptFileError(f"prompt file {name!r} has no {column!r} column (columns: {', '.join(h.strip() for h in header)})")
    i = lowered.index(column.lower())
    prompts = []
    for row_number, row in enumerate(reader, start=2):
        if i >= len(row):
            raise PromptFileError(f"prompt file {name!r}, row {row_number}: no value in column {column!r}")
        if row[i].strip():
            prompts.append(row[i].strip())
    return prompts
