"""One prompt renderer for every place a model meets a prompt.

Training renders conversations with ms-swift's own template (`--model_type`, `--template`); stage-3 rollouts do
the same (ms-swift) or use the checkpoint's chat template (skyrl-train); evaluation and a served model (vLLM) use
the checkpoint's chat template. They agree only if the checkpoint's chat template turns the same messages into
the same token ids as ms-swift's template with the pipeline's flags (`--response_prefix ''`, no empty think block).

So the pipeline settles the chat format once, in the vocabulary step:
- `resolve_format`: the ms-swift model type and template of the base model (config keys, else detected from the
  base model's files);
- `settle_chat_template`: keeps the base model's own chat template when it renders the probe conversations to the
  same ids as ms-swift, else installs the pipeline's template for that family (and says so);
- every checkpoint carries `chat_format.json`; training reads its flags from there.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .io import InputError

logger = logging.getLogger(__name__)

FORMAT_FILE = "chat_format.json"

# Base models whose format is known by name (their hub id or directory name).
KNOWN_MODELS = {
    "deepseek-ai/DeepSeek-R1-0528-Qwen3-8B": ("qwen3", "deepseek_r1"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llama", "chatml"),
}

# ms-swift model types named like the transformers `model_type` in config.json.
SWIFT_MODEL_TYPES = {"qwen3": "qwen3", "qwen2": "qwen2", "llama": "llama", "mistral": "mistral"}

# What the pipeline installs when a base model's own chat template disagrees with ms-swift's. With the pipeline's
# flags (no default system prompt, empty response prefix) ms-swift renders qwen3 and chatml identically.
PIPELINE_TEMPLATES = {
    "chatml": (
        "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    ),
    "deepseek_r1": (
        "{{- bos_token }}"
        "{%- for message in messages if message['role'] == 'system' %}{{- message['content'] }}{%- endfor %}"
        "{%- for message in messages %}"
        "{%- if message['role'] == 'user' %}{{- '<｜User｜>' + message['content'] + '<｜Assistant｜>' }}"
        "{%- elif message['role'] == 'assistant' %}{{- message['content'] + '<｜end▁of▁sentence｜>' }}"
        "{%- endif %}"
        "{%- endfor %}"
    ),
}
PIPELINE_TEMPLATES["qwen3"] = PIPELINE_TEMPLATES["chatml"]

# Conversations the two renderers must agree on: a prompt to continue, and a training record.
PROBE_PROMPT = [{"role": "user", "content": '# Instruction\nHow many rows?\n\n# Data\nFile 1: {"name": "a.csv"}'}]
PROBE_RESPONSE = (
    "<Analyze>Count them.</Analyze><Code>```python\nimport pandas as pd\nprint(len(pd.read_csv('a.csv')))\n```</Code>"
    "<Execute>\n3\n</Execute><Answer>3</Answer>"
)


class ChatFormatError(InputError):
    """The chat format cannot be settled (one line, naming what to set)."""


@dataclass(frozen=True)
class ChatFormat:
    model_type: str
    template: str

    def swift_args(self) -> list[str]:
        return ["--model_type", self.model_type, "--template", self.template]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def detect_template(chat_template: str | None) -> str | None:
    """The ms-swift template family of a Hugging Face chat template, from the markers it writes."""
    if not chat_template:
        return None
    if "<｜User｜>" in chat_template and "<｜Assistant｜>" in chat_template:
        return "deepseek_r1"
    if "<|im_start|>" in chat_template:
        return "qwen3" if ("enable_thinking" in chat_template or "<think>" in chat_template) else "chatml"
    return None


def detect_format(model_dir: Path, hub_id: str | None = None) -> ChatFormat:
    """The format of a base model from its name, else from config.json and its chat template."""
    for name in (hub_id, model_dir.name):
        for known, fmt in KNOWN_MODELS.items():
            if name and (name == known or name == known.split("/")[-1]):
                return ChatFormat(*fmt)
    cfg = _read_json(model_dir / "config.json")
    model_type = SWIFT_MODEL_TYPES.get(str(cfg.get("model_type")))
    tok_cfg = _read_json(model_dir / "tokenizer_config.json")
    template = detect_template(tok_cfg.get("chat_template"))
    if template is None and (model_dir / "chat_template.jinja").is_file():
        template = detect_template((model_dir / "chat_template.jinja").read_text(encoding="utf-8"))
    if model_type is None:
        raise ChatFormatError(
            f"{model_dir}/config.json: model_type {cfg.get('model_type')!r} is not one the "
            f"pipeline recognises; set base_model.model_type to ms-swift's name for it"
        )
    if template is None:
        raise ChatFormatError(
            f"{model_dir}: cannot tell the chat template family from tokenizer_config.json; set "
            f"base_model.template (one of {', '.join(sorted(PIPELINE_TEMPLATES))})"
        )
    return ChatFormat(model_type, template)


def resolve_format(base_model_cfg: dict, model_dir: Path) -> ChatFormat:
    """Config keys win; a key left null is detected."""
    detected = None
    model_type, template = base_model_cfg.get("model_type"), base_model_cfg.get("template")
    if model_type is None or template is None:
        detected = detect_format(model_dir, base_model_cfg.get("hub_id"))
    return ChatFormat(model_type or detected.model_type, template or detected.template)


def write_format(out_dir: Path, fmt: ChatFormat, **extra) -> None:
    (out_dir / FORMAT_FILE).write_text(json.dumps({**asdict(fmt), **extra}, indent=2) + "\n")


def read_format(checkpoint: Path) -> ChatFormat:
    data = _read_json(checkpoint / FORMAT_FILE)
    if not data:
        raise ChatFormatError(
            f"{checkpoint}/{FORMAT_FILE} is missing: the checkpoint was not made by this "
            f"pipeline's extend_vocab rule (rerun it)"
        )
    return ChatFormat(data["model_type"], data["template"])


def chat_text(messages: list[dict]) -> str:
    """Messages laid out in ChatML, as the Qwen3 and ChatML templates lay them out: the text the stage-1 token counts
    and the summary module's statistics measure (fast, no template rendering; a family's markers differ by a few
    tokens per message)."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def messages_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """A chat through the checkpoint's chat template, as ids (rendered to ids directly: no second BOS)."""
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def prompt_ids(tokenizer, prompt: str, text: str = "") -> list[int]:
    """The ids a trained model continues: the checkpoint's chat template for the task, then the single assistant
    message so far (tags inline)."""
    ids = messages_ids(tokenizer, [{"role": "user", "content": prompt}])
    return ids + (tokenizer.encode(text, add_special_tokens=False) if text else [])


def record_ids(tokenizer, prompt: str, response: str) -> list[int]:
    """A training record through the checkpoint's chat template."""
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return messages_ids(tokenizer, msgs, add_generation_prompt=False)


def swift_template(model_dir: Path, fmt: ChatFormat):
    """ms-swift's template object exactly as `swift sft` builds it from the pipeline's flags."""
    from swift.arguments import SftArguments
    from swift.utils import parse_args

    from .swift_args import COMMON_FIXED

    with tempfile.TemporaryDirectory(prefix="swift-probe-") as out:
        argv = [
            "--model",
            str(model_dir),
            "--dataset",
            "unused.jsonl",
            *fmt.swift_args(),
            *COMMON_FIXED,
            "--output_dir",
            out,
        ]
        args, remaining = parse_args(SftArguments, argv)
    if remaining:
        raise ChatFormatError(f"ms-swift did not accept {remaining}")
    return args.get_template()


def swift_ids(template, prompt: str, response: str | None) -> list[int]:
    """ms-swift's ids for a prompt to continue (response None) or a training record."""
    msgs = [{"role": "user", "content": prompt}]
    if response is None:
        template.set_mode("transformers")
    else:
        template.set_mode("train")
        msgs.append({"role": "assistant", "content": response})
    return list(template.encode({"messages": msgs})["input_ids"])


def disagreements(tokenizer, template) -> list[str]:
    """Where the checkpoint's chat template and ms-swift's template give different ids for the probes."""
    prompt = PROBE_PROMPT[0]["content"]
    out = []
    cases = (
        ("prompt", prompt_ids(tokenizer, prompt), swift_ids(template, prompt, None)),
        ("record", record_ids(tokenizer, prompt, PROBE_RESPONSE), swift_ids(template, prompt, PROBE_RESPONSE)),
    )
    for what, hf, sw in cases:
        if hf != sw:
            i = next((k for k, (a, b) in enumerate(zip(hf, sw)) if a != b), min(len(hf), len(sw)))

            def show(ids: list[int], i: int = i) -> str:
                return repr(tokenizer.decode(ids[max(0, i - 4) : i + 8], skip_special_tokens=False))

            out.append(f"{what} differs at token {i}: chat template …{show(hf)}…, ms-swift …{show(sw)}…")
    return out


def settle_chat_template(model_dir: Path, fmt: ChatFormat) -> str:
    """Make the checkpoint in `model_dir` carry a chat template that agrees with ms-swift's; returns which one
    ("own" or "pipeline"). Fails if even the pipeline's template disagrees (a template ms-swift renders
    differently from the families the pipeline knows)."""
    from transformers import AutoTokenizer

    template = swift_template(model_dir, fmt)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.chat_template and not disagreements(tok, template):
        return "own"
    if fmt.template not in PIPELINE_TEMPLATES:
        raise ChatFormatError(
            f"the base model's chat template disagrees with ms-swift's template {fmt.template!r} "
            f"and the pipeline has no template of its own for it; choose base_model.template "
            f"from {', '.join(sorted(PIPELINE_TEMPLATES))}"
        )
    why = "has none" if not tok.chat_template else "; ".join(disagreements(tok, template))
    tok.chat_template = PIPELINE_TEMPLATES[fmt.template]
    still = disagreements(tok, template)
    if still:
        raise ChatFormatError(f"the pipeline's {fmt.template} chat template disagrees with ms-swift: {still[0]}")
    tok.save_pretrained(model_dir)
    logger.info(f"chat template: the base model's own template {why}; installed the pipeline's {fmt.template} template")
    return "pipeline"
