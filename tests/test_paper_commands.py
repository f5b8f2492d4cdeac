"""ms-swift itself checks every command the paper run sends it: each `swift sft` (stages 1-2, the summary phases,
the domain LoRA), `swift rlhf` (stage 3) and `swift export` (the LoRA merge) rendered from config/deepanalyze-8b.yaml
is parsed by ms-swift's own argument classes, with the parser `swift` builds. An unknown or renamed flag, a value
of the wrong type or outside a field's choices fails here. (Building the arguments in full needs the GPUs: bf16,
DeepSpeed, Liger and vLLM are checked there; the paper-shaped run in test_paper_run.py runs every other value
through ms-swift for real.)"""

from pathlib import Path

import pytest
import yaml
from conftest import REPO
from swift.arguments import ExportArguments, RLHFArguments, SftArguments
from transformers import HfArgumentParser

from darecipe.chat import resolve_format
from darecipe.config import load_schema, validate_config
from darecipe.swift_args import export_args, grpo_args, sft_args


def paper():
    return validate_config(
        yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text()), load_schema(REPO / "config/schema.yaml")
    )


def commands():
    cfg = paper()
    chat = resolve_format(cfg["base_model"], Path(cfg["base_model"]["path"]))
    model, out, data = Path("MODEL"), Path("OUT"), [Path("train.jsonl")]
    cmds = {
        "stage1": (SftArguments, sft_args(cfg["stage1"], model, data, out, mask_execute=False, chat=chat)),
        "stage2": (SftArguments, sft_args(cfg["stage2"], model, data, out, mask_execute=True, chat=chat)),
        "stage3": (RLHFArguments, grpo_args(cfg["stage3"], model, data[0], out, chat)),
        "domain_lora": (
            SftArguments,
            sft_args(cfg["domain_lora"], model, data, out, mask_execute=cfg["domain_lora"]["mask_execute"], chat=chat),
        ),
        "merge_domain_lora": (ExportArguments, export_args(Path("ADAPTER"), model, out)),
    }
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


def skyrl_config_dir(tmp_path: Path) -> Path:
    """The Hydra config of the skyrl-train version envs/skyrl.yaml pins, from its wheel (`make install` downloads
    it: skyrl-train itself needs Python 3.12 and CUDA, so it is not installed here)."""
    import re
    import sys
    import zipfile

    version = re.search(r"skyrl-train\[vllm\]==([\d.]+)", (REPO / "envs/skyrl.yaml").read_text()).group(1)
    wheel = Path(sys.prefix) / "share/wheels" / f"skyrl_train-{version}-py3-none-any.whl"
    assert wheel.is_file(), f"{wheel} is missing: run `make install`"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path, [n for n in z.namelist() if n.startswith("skyrl_train/config/")])
    return tmp_path / "skyrl_train/config"


def skyrl_overrides() -> list[str]:
    from darecipe.stage3 import stage3_command

    cfg = paper()
    chat = resolve_format(cfg["base_model"], Path(cfg["base_model"]["path"]))
    argv = stage3_command(
        "skyrl",
        {**cfg["stage3"], "backend": "skyrl"},
        Path("MODEL"),
        Path("train.jsonl"),
        [Path("qa.parquet")],
        Path("OUT"),
        [151676, 151645],
        {"workspace_root": "WORKSPACES", "sandbox": cfg["sandbox"]},
        chat,
    )
    return argv[argv.index("darecipe.skyrl_main") + 1 :]


def test_skyrl_train_accepts_every_override_of_the_paper_command(tmp_path):
    from hydra import compose, initialize_config_dir

    overrides = skyrl_overrides()
    with initialize_config_dir(config_dir=str(skyrl_config_dir(tmp_path)), version_base=None):
        c = compose(config_name="ppo_base_config", overrides=overrides)
        assert c.generator.use_conversation_multi_turn is False
        assert c.generator.max_input_length == 32768 and c.trainer.max_prompt_length == 8000
        assert c.generator.n_samples_per_prompt == 5 and c.generator.max_turns == 30
        # the check is real: a misspelt key is refused, as skyrl-train's own Hydra entry point refuses it
        with pytest.raises(Exception, match="use_conversation_multi_turns"):
            compose(
                config_name="ppo_base_config", overrides=[*overrides, "generator.use_conversation_multi_turns=false"]
            )
