"""Every download rule, run for real through Snakemake with the paper configuration, without network: a stub of the
hub client and of urlopen (installed by a sitecustomize module in the jobs' Python) records what each fetch asked
for, so the test checks that the pinned id, revision and URL of the config reach the fetch function, and that the
logs hold the checksums."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo, snakemake

from darecipe.fetch import RAW_ROOT, fetch_hub, fetch_url
from darecipe.io import InputError

STUB = """
import io, json, os, zipfile

if os.environ.get("DARECIPE_FETCH_LOG"):
    import huggingface_hub
    import urllib.request

    def _record(**kw):
        with open(os.environ["DARECIPE_FETCH_LOG"], "a") as f:
            f.write(json.dumps(kw) + "\\n")

    def snapshot_download(repo_id, repo_type=None, revision=None, local_dir=None, allow_patterns=None, **kw):
        _record(kind="hub", repo_id=repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns)
        os.makedirs(local_dir, exist_ok=True)
        for name in allow_patterns or ["README.md"]:
            with open(os.path.join(local_dir, name), "w") as f:
                f.write("stub of " + repo_id)
        return local_dir

    class _Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    def urlopen(url, *args, **kw):
        _record(kind="url", url=url)
        if not url.endswith(".zip"):
            return _Response(b"[]")
        inner, outer = io.BytesIO(), io.BytesIO()
        with zipfile.ZipFile(inner, "w") as z:
            z.writestr("train_databases/db1/db1.sqlite", "not really sqlite")
        with zipfile.ZipFile(outer, "w") as z:
            z.writestr("train/train_databases.zip", inner.getvalue())
            z.writestr("train/README.txt", "x")
        return _Response(outer.getvalue())

    huggingface_hub.snapshot_download = snapshot_download
    urllib.request.urlopen = urlopen
"""


def test_fetch_functions_pass_the_pinned_revision_and_check_the_sha256(tmp_path, darecipe_log):
    calls = []

    def snap(**kw):
        calls.append(kw)
        Path(kw["local_dir"]).mkdir(parents=True, exist_ok=True)
        Path(kw["local_dir"], "a.json").write_text("[]")

    said = darecipe_log
    sums = fetch_hub("org/data", "a" * 40, tmp_path / "hub", files=["a.json"], snapshot_download=snap)
    assert calls == [
        {
            "repo_id": "org/data",
            "repo_type": "dataset",
            "revision": "a" * 40,
            "local_dir": str(tmp_path / "hub"),
            "allow_patterns": ["a.json"],
        }
    ]
    assert list(sums) == ["a.json"] and not any(s.startswith("WARNING") for s in said)
    fetch_hub("org/data", None, tmp_path / "hub2", snapshot_download=snap)
    assert any("not a commit hash" in s for s in said)

    class Resp:
        def __init__(self):
            self.parts = [b"hello", b""]

        def read(self, n):
            return self.parts.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    assert fetch_url("https://x/y/f.txt", tmp_path / "u", good, urlopen=lambda url: Resp()) == {"f.txt": good}
    with pytest.raises(InputError, match="differs from the pinned"):
        fetch_url("https://x/y/f.txt", tmp_path / "v", "0" * 64, urlopen=lambda url: Resp())


def test_each_download_rule_fetches_what_the_paper_config_pins(tmp_path_factory, monkeypatch):
    work = copy_repo(tmp_path_factory.mktemp("downloads"))
    stub = work / "stub"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(STUB)
    fetch_log = work / "fetches.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(stub))
    monkeypatch.setenv("DARECIPE_FETCH_LOG", str(fetch_log))
    paper = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())
    released = yaml.safe_load((REPO / "config/deepanalyze-8b-released.yaml").read_text())["data"]["released"]
    download_dir = "resources/data/released/DataScience-Instruct-500K"  # the schema's default
    targets = [f"{RAW_ROOT}/{name}" for name in paper["sources"]] + [download_dir, paper["base_model"]["path"]]
    snakemake(
        work,
        "--cores",
        "2",
        *targets,
        "--configfile",
        "config/deepanalyze-8b.yaml",
        "config/deepanalyze-8b-released.yaml",
        "--replace-workflow-config",
    )

    calls = [json.loads(line) for line in fetch_log.read_text().splitlines()]
    urls = {c["url"] for c in calls if c["kind"] == "url"}
    hub = {c["repo_id"]: c for c in calls if c["kind"] == "hub"}
    assert urls == {s["url"] for s in paper["sources"].values() if s.get("url")}
    for name, spec in paper["sources"].items():
        if spec.get("hub_id"):
            assert hub[spec["hub_id"]]["revision"] == spec.get("revision"), name
            assert hub[spec["hub_id"]]["allow_patterns"] == spec["files"], name
            assert hub[spec["hub_id"]]["repo_type"] == "dataset"
    assert hub[released["hub_id"]]["revision"] == released["revision"]
    base = paper["base_model"]
    assert (hub[base["hub_id"]]["repo_type"], hub[base["hub_id"]]["revision"]) == ("model", base["revision"])

    bird_log = (work / "logs/download_source/bird.log").read_text()
    assert "licence: CC BY-SA 4.0" in bird_log and "unpacked train/train_databases.zip" in bird_log
    assert "sha256 " in bird_log and (work / RAW_ROOT / "bird/train/train_databases/db1/db1.sqlite").is_file()
    assert "sha256 " in (work / "logs/download_released.log").read_text()
    assert "sha256 " in (work / "logs/download_base_model.log").read_text()
