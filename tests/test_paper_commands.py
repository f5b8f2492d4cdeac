"""ms-swift itself checks every command the paper run sends it: each `swift sft` (stages 1-2, the summary phases,
the domain LoRA), `swift rlhf` (stage 3) and `swift export` (the LoRA merge) rendered from config/deepanalyze-8b.yaml
is parsed by ms-swift's own argument classes, with the parser `swift` builds. An unknown or renamed flag, a value
of the wrong type or outside a field's choices fails here. (Building the arguments in full needs the GPUs: bf16,
DeepSpeed, Liger and vLLM are checked there; the paper-shaped run in test_paper_run.py runs every other value
through ms-swift for real.)"""

from pathlib import Path

import pytest
import yaml
from swift.arguments import ExportArguments, RLHFArguments, SftArguments
from transformers import HfArgumentParser

from darecipe.chat import resolve_format
from darecipe.config import load_schema, validate_config
from darecipe.swift_args import export_args, grpo_args, sft_args

from conftest import REPO


def paper():
    return validate_config(yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text()),
                           load_schema(REPO / "config/schema.yaml"))  # fmt: skip


def commands():
    cfg = paper()
    chat = resolve_format(cfg["base_model"], Path(cfg["base_model"]["path"]))
    model, out, data = Path("MODEL"), Path("OUT"), [Path("train.jsonl")]
    cmds = {
        "stage1": (SftArguments, sft_args(cfg["stage1"], model, data, out, mask_execute=False, chat=chat)),
        "stage2": (SftArguments, sft_args(cfg["stage2"], model, data, out, mask_execute=True, chat=chat)),
        "stage3": (RLHFArguments, grpo_args(cfg["stage3"], model, data[0], out, chat)),
        "domain_lora": (SftArguments, sft_args(cfg["domain_lora"], model, data, out,
                                               mask_execute=cfg["domain_lora"]["mask_execute"], chat=chat)),
        "merge_domain_lora": (ExportArguments, export_args(Path("ADAPTER"), model, out)),
    }  # fmt: skip
    for i, phase in enumerate(cfg["summary"]["phases"], 1):
        cmds[f"summary_phase{i}"] = (SftArguments, sft_args(phase, model, data, out, mask_execute=False, chat=chat))
    return cmds


def swift_parser(cls) -> HfArgumentParser:
    """The parser `swift.utils.parse_args` builds for a command's argument class."""
    from swift.utils.utils import _patch_get_type_hints

    with _patch_get_type_hints():
        return HfArgumentParser([cls])


@pytest.mark.parametrize("name", sorted(commands()))
def test_ms_swift_accepts_every_flag_of_the_paper_command(name):
    cls, argv = commands()[name]
    namespace, unknown = swift_parser(cls).parse_known_args(argv)
    assert not unknown, f"{name}: ms-swift's {cls.__name__} has no flag {unknown}"
    if cls is not ExportArguments:
        assert namespace.template == "deepseek_r1" and namespace.model_type == "qwen3"


def test_a_renamed_flag_is_caught():
    """The check is real: ms-swift 4 renamed --train_type to --tuner_type, and an old command fails here."""
    cls, argv = commands()["stage1"]
    argv = [("--train_type" if a == "--tuner_type" else a) for a in argv]
    _, unknown = swift_parser(cls).parse_known_args(argv)
    assert "--train_type" in unknown
    for bad in (["--template_backend", "jinja2"], ["--max_length", "32k"]):  # outside the choices; not an int
        with pytest.raises(SystemExit):
            swift_parser(cls).parse_known_args(argv + bad)


def test_the_plugin_registers_every_name_the_commands_use():
    from swift.loss_scale.mapping import loss_scale_map
    from swift.rewards.orm import orms
    from swift.rollout.multi_turn import multi_turns

    import darecipe.swift_plugin  # noqa: F401 - registers the names, as --external_plugins does

    stage2, stage3 = commands()["stage2"][1], commands()["stage3"][1]
    assert stage2[stage2.index("--loss_scale") + 1].split("+")[-1] in loss_scale_map
    assert stage3[stage3.index("--multi_turn_scheduler") + 1] in multi_turns
    assert stage3[stage3.index("--reward_funcs") + 1] in orms
