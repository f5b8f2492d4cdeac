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

    return {
        "stage1_sets": list(STAGE1_SETS),
        "supplied_sets": list(SUPPLIED_SETS),
        "categories": list(CATEGORIES),
        "stage1_prompts": list(STAGE1_PROMPTS),
        "released_stage1_sets": [name for name, s in STAGE1_SETS.items() if s.released],
        "judge_prompts": {name: f"config/prompts/{m.judge_prompt}" for name, m in METHODS.items()},
    }


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
            return {n: {"type": "string", "x-path": "file", "default": path} for n, path in files.items()}
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


# A number as YAML 1.2 writes it. PyYAML follows YAML 1.1, whose floats need a dot: `1e-4` and `5E3` arrive as strings.
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _all_errors(errors):
    for err in errors:
        yield err
        yield from _all_errors(err.context or ())


def _numbers_from_strings(config: dict, errors) -> None:
    """A number-typed key given a string that spells a number gets the number (`learning_rate: 1e-4` means 1e-4 to
    anyone but a YAML 1.1 parser); an integer-typed key only takes a whole number (`max_steps: 1e3`)."""
    for err in _all_errors(errors):
        types = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if err.validator != "type" or not isinstance(err.instance, str) or "string" in types:
            continue
        text = err.instance.strip()
        if not NUMBER.fullmatch(text) or not err.absolute_path:
            continue
        value = float(text)
        if "integer" in types and value.is_integer():
            value = int(value)
        elif "number" not in types:
            continue
        *parents, last = err.absolute_path
        node = config
        for p in parents:
            node = node[p]
        node[last] = value


def validate_config(config: dict, schema: dict, sources: str = "config") -> dict:
    """Fill defaults into `config` in place, turn numbers written as strings into numbers, and raise ConfigError on
    the first problem."""
    validator = DefaultFillingValidator(schema)
    # Defaults are filled as the validator walks; a first pass fills (and finds numbers written as strings), a
    # second reports on the filled config.
    _numbers_from_strings(config, list(validator.iter_errors(config)))
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
        raise ConfigError(
            f"{sources}: stage1_data.mix.total / replace only apply with mix.ratios (null keeps every "
            f"record); set ratios to resample, or remove them"
        )
    summary = config.get("summary") or {}
    families = summary.get("tag_families") or {}
    named = [(f"summary.traces[{i}].family", t.get("family")) for i, t in enumerate(summary.get("traces") or [])]
    named.append(("summary.pipeline_trajectories", summary.get("pipeline_trajectories")))
    if summary and not summary.get("traces") and summary.get("pipeline_trajectories") is None:
        raise ConfigError(
            f"{sources}: summary.traces is empty and summary.pipeline_trajectories is null: the summary "
            "module would have no traces to learn from"
        )
    for key, family in named:
        if family is not None and family not in families:
            raise ConfigError(
                f"{sources}: {key}: unknown tag family {family!r} (summary.tag_families has "
                f"{', '.join(families) or 'none'})"
            )


def _deepest_relevant(err):
    """The error to report of a oneOf/anyOf: from a branch of the value's own type (an object given to a
    string-or-object key is told what the object lacks, not that it is no string)."""
    if not err.context:
        return err
    from jsonschema.exceptions import best_match

    wrong_type = {e.relative_schema_path[0] for e in err.context if list(e.relative_schema_path)[1:] == ["type"]}
    fitting = [e for e in err.context if e.relative_schema_path[0] not in wrong_type]
    return best_match(fitting or err.context)


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
            raise ConfigError(
                f"{field}: unknown placeholder {{{unknown[0]}}} in {arg!r} (known: "
                f"{', '.join('{' + k + '}' for k in values)})"
            )
        argv.append(str(arg).format(**{k: str(v) for k, v in values.items()}))
    return argv


def check_llm(config: dict, sources: str = "config") -> None:
    """A local teacher needs its weights, and its commands may only use the placeholders they are given."""
    llm = config["llm"]
    if llm["backend"] != "vllm":
        return
    model = llm["local"]["model"]
    if not model or not Path(model).is_dir():
        raise ConfigError(
            f"{sources}: llm.local.model: {'required' if not model else f'{model} is not a directory'} "
            "(the teacher's weights, served by vLLM when llm.backend is 'vllm')"
        )
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


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref", "")
    return root["$defs"][ref.split("/")[-1]] if ref.startswith("#/$defs/") else node


def named_paths(config: dict, schema: dict) -> list[tuple[str, str, str]]:
    """(key, `file` or `dir`, path) of every value of `config` that the schema marks `x-path`, found by walking the
    config along the schema (objects, maps, lists, $ref / allOf / oneOf)."""
    found: list[tuple[str, str, str]] = []

    def walk(node, value, key: str) -> None:
        if not isinstance(node, dict):
            return
        node = _resolve(node, schema)
        if "x-path" in node and isinstance(value, str):
            found.append((key, node["x-path"], value))
        for sub in (*node.get("allOf", ()), *node.get("oneOf", ()), *node.get("anyOf", ())):
            walk(sub, value, key)
        if isinstance(value, dict):
            props, extra = node.get("properties") or {}, node.get("additionalProperties")
            for k, v in value.items():
                walk(props.get(k, extra), v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(node.get("items"), v, f"{key}[{i}]")

    walk(schema, config, "")
    return list(dict.fromkeys(found))  # a oneOf branch and a $ref may name the same key twice


def path_problem(path: str | Path, kind: str) -> str | None:
    """Why `path` cannot be the input file (`kind` file) or folder (`kind` dir) a key names; None if it can."""
    p = Path(path)
    if kind == "dir":
        if p.is_dir():
            return None
        return f"{p} is a file, not a directory" if p.exists() else f"directory {p} does not exist"
    if p.is_dir():
        return f"{p} is a directory, not a file"
    if not p.is_file():
        return f"input file {p} does not exist"
    if p.stat().st_size == 0:
        return f"input file {p} is empty"
    return None


def check_paths(config: dict, schema: dict, sources: str = "config") -> None:
    """Files and folders the configuration names must exist before anything runs (unless a download rule makes
    them): every key the schema marks `x-path`, then those that depend on other settings (the base model, the
    workspaces under synthesis.data_root, the teacher's and judge's recordings, the released data, summary.base)."""
    base = config["base_model"]
    if base["source"] == "local":
        p = Path(base["path"])
        if not (p / "config.json").is_file():
            raise ConfigError(f"{sources}: base_model.path: {p} is not an HF checkpoint directory (no config.json)")
    if base["source"] == "hub" and not base.get("hub_id"):
        raise ConfigError(f"{sources}: base_model.hub_id: required when base_model.source is 'hub'")
    standin = base["tiny"].get("tokenizer")
    if base["source"] == "tiny" and standin and not (Path(standin) / "tokens.json").is_file():
        raise ConfigError(
            f"{sources}: base_model.tiny.tokenizer: {standin} is not a tokenizer stand-in (no tokens.json)"
        )
    summary_base = config["summary"]["base"]
    if (
        summary_base not in ("vocab", "stage1", "stage2", "stage3")
        and not (Path(summary_base) / "config.json").is_file()
    ):
        raise ConfigError(
            f"{sources}: summary.base: {summary_base} is neither vocab, stage1, stage2, stage3 nor an HF "
            "checkpoint directory (no config.json)"
        )
    syn = config["synthesis"]
    named = named_paths(config, schema)
    for name, ws_files in syn["workspaces"].items():
        # relative to synthesis.data_root; the first unusable file of a workspace is the one named
        for f in ws_files:
            path = str(Path(syn["data_root"]) / (f["from"] if isinstance(f, dict) else f))
            if path_problem(path, "file"):
                named.append((f"synthesis.workspaces.{name}", "file", path))
                break
    from .synthesis_plan import PlanError, jobs

    try:
        jobs(syn)
    except PlanError as e:
        raise ConfigError(f"{sources}: {e}") from None
    for key, kind, path in named:
        problem = path_problem(path, kind)
        if problem and not made_by_a_rule(path, config):
            raise ConfigError(f"{sources}: {key}: {problem}")
    dirs = {}
    if config["llm"]["backend"] == "replay":
        dirs["llm.recordings"] = config["llm"]["recordings"]
    if config["judge"]["backend"] == "replay":
        dirs["judge.recordings"] = config["judge"]["recordings"]
    released = config["data"]["released"]
    if config["data"]["source"] != "synthesised" and released["path"]:
        dirs["data.released.path"] = released["path"]
    check_llm(config, sources)
    for key, path in dirs.items():
        problem = path_problem(path, "dir")
        if problem and not made_by_a_rule(path, config):
            raise ConfigError(f"{sources}: {key}: {problem}")
    for name, spec in config["sources"].items():
        if not (spec["hub_id"] or spec["url"]):
            raise ConfigError(f"{sources}: sources.{name}: needs hub_id (with revision) or url")


def _merge(into: dict, more: dict) -> None:
    """Merge a config file into the ones before it, as Snakemake merges --configfile files (nested keys merge)."""
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def load_config_files(paths: list[str]) -> dict:
    """The configuration these files make, each merged into the ones before it; a YAML syntax error names the file,
    line and column (Snakemake only says that some config file is not valid JSON or YAML)."""
    merged: dict = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot be read ({e})") from None
        if not isinstance(data, dict):
            what = "an empty file" if data is None else f"a {type(data).__name__}"
            raise ConfigError(f"{path}: must hold keys at the top level, not {what}")
        _merge(merged, data)
    return merged


def main(argv: list[str] | None = None) -> int:
    """`python -m darecipe.config config/config.yaml my.yaml`: the checks a Snakemake run makes before any job, on
    these files merged in order, from the repository root; prints one line."""
    import sys

    paths = list(sys.argv[1:] if argv is None else argv) or ["config/config.yaml"]
    sources = " + ".join(paths)
    try:
        config = load_config_files(paths)
        schema = load_schema(Path(__file__).resolve().parents[2] / "config/schema.yaml")
        validate_config(config, schema, sources)
        check_paths(config, schema, sources)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 1
    print(f"{sources}: no configuration error")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
