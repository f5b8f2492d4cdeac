"""Prompts: DeepAnalyze's task prompt shape (docs/recipe.md#2-prompts-and-trajectories: `# Instruction` + optional
`# Data` listing the files) and the teacher's prompt files (`$name` templates)."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from .io import InputError, read_text


def load_template(path: str | Path) -> Template:
    """A prompt file with `$name` placeholders; a file that is not UTF-8, is empty, or has a `$` that starts no
    placeholder (write `$$` for a dollar sign) is an InputError naming the file and line, not a traceback in the
    middle of a job."""
    text = read_text(path)
    if not text.strip():
        raise InputError(f"{path}: empty prompt file")
    tpl = Template(text)
    if not tpl.is_valid():
        try:
            tpl.substitute({name: "" for name in tpl.get_identifiers()})
        except ValueError as e:  # "Invalid placeholder in string: line 3, col 7"
            raise InputError(f"{path}: {e} (write $$ for a literal dollar sign)") from None
    return tpl


def file_size_label(n_bytes: int) -> str:
    return f"{n_bytes / 1024:.1f}KB"


def data_section(files: list[Path]) -> str:
    """`File i: {"name": …, "size": "x.xKB"}` lines, files sorted by name."""
    lines = []
    for i, p in enumerate(sorted(files, key=lambda q: q.name), start=1):
        meta = {"name": p.name, "size": file_size_label(p.stat().st_size)}
        lines.append(f"File {i}: {json.dumps(meta, ensure_ascii=False)}")
    return "\n".join(lines)


def task_prompt(task: str, files: list[Path] = ()) -> str:
    text = f"# Instruction\n{task.strip()}"
    if files:
        text += f"\n\n# Data\n{data_section(list(files))}"
    return text


def table_prompt(question: str, table_text: str | None, extra_text: str | None = None) -> str:
    text = f"# Instruction\n{question.strip()}"
    if extra_text:
        text += f"\n\n# Text\n{extra_text.strip()}"
    if table_text:
        text += f"\n\n# Table\n{table_text.strip()}"
    return text
