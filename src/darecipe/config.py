"""Configuration checks run before any job: JSON Schema with defaults filled, then file checks.

Every problem becomes a `ConfigError` whose message is one line naming the key or the file.
"""

from __future__ import annotations

import copy
import re
import string
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators


class ConfigError(Exception):
    """A user-fixable configuration problem; the message is one line."""


def _with_defaults(cls):
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


DefaultFillingValidator = _with_defaults(Draft202012Validator)


def _registry() -> dict[str, list[str] | dict[str, str]]:
    from .reward import METHODS
    from .sets import CATEGORIES, STAGE1_PROMPTS, STAGE1_SETS, SUPPLIED_SETS

    return {"stage1_sets": list(STAGE1_SETS), "supplied_sets": list(SUPPLIED_SETS), "categories": list(CATEGORIES),
            "stage1_prompts": list(STAGE1_PROMPTS),
            "released_stage1_sets": [name for name, s in STAGE1_SETS.items() if s.released],
            "judge_prompts": {name: f"config/prompts/{m.judge_prompt}" for name, m in METHODS.items()}}  # fmt: skip


def _fill_registry(node, names: dict):
    """Replace each `{x-registry: <list>}` of the schema by an enum of the names in darecipe.sets (one registry), and
    each `{x-registry-files: <list>}` by one path property per name, default config/prompts/<name>.txt (or the
    registry's own file name)."""
    if isinstance(node, dict):
        if "x-registry" in node:
            return {"enum": names[node["x-registry"]]}
        if "x-registry-files" in node:
            files = names[node["x-registry-files"]]
            files = files if isinstance(files, dict) else {n: f"config/prompts/{n}.txt" for n in files}
            return {n: {"type": "string", "default": path} for n, path in files.items()}
        return {k: _fill_registry(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill_registry(v, names) for v in node]
    return node


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return _fill_registry(yaml.safe_load(f), _registry())


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _known_properties(schema: dict, root: dict) -> set[str]:
    known = set(schema.get("properties") or {})
    for sub in schema.get("allOf", []):
        ref = sub.get("$ref", "")
        if ref.startswith("#/$defs/"):
            sub = root["$defs"][ref.split("/")[-1]]
        known |= _known_properties(sub, root)
    return known


def _describe(err, root: dict) -> str:
    where = _key(err.absolute_path)
    if err.validator in ("additionalProperties", "unevaluatedProperties"):
        names = re.findall(r"'([^']+)'", err.message)
        unknown = [n for n in names if n not in _known_properties(err.schema, root)] or names
        prefix = f"{where}." if err.absolute_path else ""
        return f"unknown key {', '.join(prefix + n for n in unknown)}"
    if err.validator == "enum":
        return f"{where}: {err.instance!r} is not one of {err.validator_value}"
    return f"{where}: {err.message}"


def validate_config(config: dict, schema: dict, sources: str = "config") -> dict:
    """Fill defaults into `config` in place and raise ConfigError on the first problem."""
    validator = DefaultFillingValidator(schema)
    # Defaults are filled as the validator walks; a first pass fills, a second reports on the filled config.
    for _ in validator.iter_errors(config):
        pass
    errors = sorted(
        validator.iter_errors(config),
        key=lambda e: (e.validator == "unevaluatedProperties", len(e.absolute_path), str(e.absolute_path)),
    )
    if errors:
        err = _deepest_relevant(errors[0])
        raise ConfigError(f"{sources}: {_describe(err, schema)}")
    _check_combinations(config, sources)
    return config


def _check_combinations(config: dict, sources: str) -> None:
    """Settings that are valid alone but mean nothing together."""
    mix = (config.get("stage1_data") or {}).get("mix") or {}
    if mix.get("ratios") is None and (mix.get("total") is not None or mix.get("replace")):
        raise ConfigError(f"{sources}: stage1_data.mix.total / replace only apply with mix.ratios (null keeps every "
                          f"record); set ratios to resample, or remove them")  # fmt: skip


def _deepest_relevant(err):
    if err.context:
        from jsonschema.exceptions import best_match

        return best_match(err.context)
    return err


# The placeholders each configured command may use.
COMMAND_FIELDS = {
    "llm.local.serve_command": ("model", "port", "name", "gpus"),
    "llm.local.run_batch_command": ("input", "output", "model", "name", "gpus"),
}


def render_command(command, field: str, **values) -> list[str]:
    """A configured argv with its `{placeholders}` filled in; a placeholder that names no known value is a
    ConfigError naming the field."""
    argv = []
    for arg in command:
        names = [n for _, n, _, _ in string.Formatter().parse(str(arg)) if n is not None]
        unknown = [n for n in names if n not in values]
        if unknown:
            raise ConfigError(f"{field}: unknown placeholder {{{unknown[0]}}} in {arg!r} (known: "
                              f"{', '.join('{' + k + '}' for k in values)})")  # fmt: skip
        argv.append(str(arg).format(**{k: str(v) for k, v in values.items()}))
    return argv


def check_llm(config: dict, sources: str = "config") -> None:
    """A local teacher needs its weights, and its commands may only use the placeholders they are given."""
    llm = config["llm"]
    if llm["backend"] != "vllm":
        return
    model = llm["local"]["model"]
    if not model or not Path(model).is_dir():
        raise ConfigError(f"{sources}: llm.local.model: {'required' if not model else f'{model} is not a directory'} "
                          "(the teacher's weights, served by vLLM when llm.backend is 'vllm')")  # fmt: skip
    for key in ("serve_command", "run_batch_command"):
        field = f"llm.local.{key}"
        try:
            render_command(llm["local"][key], field, **{k: "x" for k in COMMAND_FIELDS[field]})
        except (ConfigError, ValueError, IndexError) as e:
            raise ConfigError(f"{sources}: {e}" if isinstance(e, ConfigError) else f"{sources}: {field}: {e}") from None


def made_by_a_rule(path: str | Path, config: dict) -> bool:
    """A path that a download rule fills (resources/data/raw/<source>/..., or the released data's download folder)
    exists only after that rule ran."""
    from .fetch import RAW_ROOT

    p = Path(path)
    roots = [Path(RAW_ROOT) / name for name in config.get("sources", {})]
    released = config.get("data", {}).get("released", {})
    if not released.get("path"):
        roots.append(Path(released.get("download_dir", "")))
    return any(p == r or r in p.parents for r in roots if str(r))


def extra_set_path(value) -> str:
    """stage1_data.extra_sets values are a path or {path, format, limit, seed}."""
    return value["path"] if isinstance(value, dict) else value


def check_paths(config: dict, sources: str = "config") -> None:
    """Files the configuration names must exist before anything runs (unless a download rule makes them)."""
    base = config["base_model"]
    if base["source"] == "local":
        p = Path(base["path"])
        if not (p / "config.json").is_file():
            raise ConfigError(f"{sources}: base_model.path: {p} is not an HF checkpoint directory (no config.json)")
    if base["source"] == "hub" and not base.get("hub_id"):
        raise ConfigError(f"{sources}: base_model.hub_id: required when base_model.source is 'hub'")
    standin = base["tiny"].get("tokenizer")
    if base["source"] == "tiny" and standin and not (Path(standin) / "tokens.json").is_file():
        raise ConfigError(f"{sources}: base_model.tiny.tokenizer: {standin} is not a tokenizer stand-in (no tokens.json)")
    files = {}
    d = config["stage1_data"]
    files.update({"stage1_data.wikitq.tsv": d["wikitq"]["tsv"], "stage1_data.finqa.path": d["finqa"]["path"],
                  "stage1_data.tatqa.path": d["tatqa"]["path"], "stage1_data.file_tasks": d["file_tasks"],
                  "stage1_data.cues": d["cues"]})  # fmt: skip
    files.update({f"stage1_data.prompts.{k}": v for k, v in d["prompts"].items()})
    files.update({f"stage1_data.extra_sets.{k}": extra_set_path(v) for k, v in d["extra_sets"].items()})
    syn = config["synthesis"]
    files.update({f"synthesis.prompts.{k}": v for k, v in syn["prompts"].items()})
    for name, ws_files in syn["workspaces"].items():
        for f in ws_files:
            rel = f["from"] if isinstance(f, dict) else f
            files[f"synthesis.workspaces.{name}"] = str(Path(syn["data_root"]) / rel)
            if not Path(files[f"synthesis.workspaces.{name}"]).is_file():
                break
    from .synthesis_plan import PlanError, jobs

    try:
        jobs(syn)
    except PlanError as e:
        raise ConfigError(f"{sources}: {e}") from None
    for key, path in files.items():
        if not Path(path).is_file() and not made_by_a_rule(path, config):
            raise ConfigError(f"{sources}: {key}: input file {path} does not exist")
    dirs = {"synthesis.data_root": syn["data_root"], "stage1_data.data_root": d["data_root"],
            "stage1_data.wikitq.root": d["wikitq"]["root"]}  # fmt: skip
    if config["llm"]["backend"] == "replay":
        dirs["llm.recordings"] = config["llm"]["recordings"]
    released = config["data"]["released"]
    if config["data"]["source"] != "synthesised" and released["path"]:
        dirs["data.released.path"] = released["path"]
    check_llm(config, sources)
    for key, path in dirs.items():
        if not Path(path).is_dir() and not made_by_a_rule(path, config):
            raise ConfigError(f"{sources}: {key}: directory {path} does not exist")
    for name, spec in config["sources"].items():
        if not (spec["hub_id"] or spec["url"]):
            raise ConfigError(f"{sources}: sources.{name}: needs hub_id (with revision) or url")
