import json

import pytest
from transformers import AutoTokenizer

from darecipe.tags import TAGS, check_structure, final_answer, last_open_code, strip_fence, tag_ids


@pytest.mark.parametrize("fixture", ["tiny_vocab", "tiny_vocab_special"])
def test_each_tag_is_one_token_with_the_recipe_ids(fixture, request):
    path = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tag_ids(tok)
    assert json.loads((path / "tags.json").read_text()) == ids
    # On the Qwen3 base vocabulary the tags take 151669-151678 (docs/recipe.md §1), read from the tokenizer.
    assert ids["<Analyze>"] == 151669 and ids["</Answer>"] == 151678
    assert ids["<Execute>"] == 151675 and ids["</Execute>"] == 151676 and ids["</Code>"] == 151674
    for tag in TAGS:
        assert tok.decode([ids[tag]], skip_special_tokens=False) == tag


def test_ordinary_added_tags_survive_skip_special_tokens(tiny_vocab):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    text = "<Code>print(1)</Code><Execute>\n1\n</Execute><Answer>1</Answer>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_special_tags_vanish_under_skip_special_tokens(tiny_vocab_special):
    """Why rollouts and rewards decode with skip_special_tokens=False."""
    tok = AutoTokenizer.from_pretrained(tiny_vocab_special)
    text = "<Execute>\n1\n</Execute>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert tok.decode(ids, skip_special_tokens=True) == "\n1\n"


def test_structure_checks():
    good = "<Analyze>a</Analyze><Code>```python\nprint(1)\n```</Code><Execute>\n1\n</Execute><Answer>1</Answer>"
    assert check_structure(good).ok
    assert not check_structure("<Analyze>a</Analyze><Code>x</Code><Answer>1</Answer>").ok
    assert not check_structure("<Analyze>a<Code>x</Code></Analyze><Answer>1</Answer>").ok
    assert not check_structure("<Analyze>a</Analyze>").ok
    assert not check_structure(good + "<Answer>2</Answer>").ok
    assert "text after </Answer>" in check_structure(good + " trailing").reasons


def test_code_helpers():
    assert strip_fence("```python\nprint(1)\n```") == "print(1)"
    assert strip_fence("\nprint(2)\n") == "print(2)"
    assert last_open_code("<Analyze>x</Analyze><Code>```python\nprint(1)\n```</Code>") == "```python\nprint(1)\n```"
    assert last_open_code("<Code>print(1)") == "print(1)"
    assert last_open_code("<Code>a</Code><Execute>\n1\n</Execute>") is None
    assert final_answer("<Answer>Answer: 42</Answer>") == "42"
    assert final_answer("no answer") is None
