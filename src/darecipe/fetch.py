"""Fetching data once, in explicit download rules only: a pinned hub revision or a URL, every file's sha256 in the
rule's log. Nothing else in the pipeline touches the network for data or weights."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import zipfile
from pathlib import Path

from .io import InputError, sha256_file

logger = logging.getLogger(__name__)

RAW_ROOT = "resources/data/raw"  # download_source writes resources/data/raw/<source>/
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under root (logged, so a run records exactly what it trained on)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".cache" not in p.relative_to(root).parts:
            out[str(p.relative_to(root))] = digest = sha256_file(p)
            logger.info(f"sha256 {digest}  {p.relative_to(root)}")
    return out


def fetch_hub(
    hub_id: str, revision: str | None, dest: Path, repo_type: str = "dataset", files=(), snapshot_download=None
) -> dict[str, str]:
    """A hub repository's files at `revision` into `dest` (huggingface_hub.snapshot_download, the raw files, not a
    `datasets` conversion). `snapshot_download` is injectable so tests run without network."""
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    if not (revision and COMMIT_RE.fullmatch(revision)):
        logger.warning(
            f"revision {revision!r} is not a commit hash: the files may change under you; pin the commit "
            "that the line below reports"
        )
    logger.info(
        f"fetching {repo_type} {hub_id} at revision {revision or '(default branch)'}"
        + (f", files {', '.join(files)}" if files else "")
    )
    snapshot_download(
        repo_id=hub_id, repo_type=repo_type, revision=revision, local_dir=str(dest), allow_patterns=list(files) or None
    )
    resolved = _resolved_commit(dest)
    if resolved:
        logger.info(f"resolved commit {resolved}")
    return checksums(dest)


def _resolved_commit(dest: Path) -> str | None:
    """huggingface_hub records the commit of each file it wrote into a local_dir under .cache/huggingface/."""
    for meta in sorted((dest / ".cache" / "huggingface" / "download").rglob("*.metadata")):
        first = meta.read_text(encoding="utf-8").splitlines()[:1]
        if first and COMMIT_RE.fullmatch(first[0].strip()):
            return first[0].strip()
    return None


def fetch_url(url: str, dest: Path, sha256: str | None = None, unpack: bool = False, urlopen=None) -> dict[str, str]:
    """One file from `url` into `dest` (checked against `sha256` when given); zip archives unpacked in place when
    `unpack`, nested ones too. `urlopen` is injectable so tests run without network."""
    if urlopen is None:
        from urllib.request import urlopen
    name = url.rsplit("/", 1)[-1].split("?", 1)[0] or "download"
    dest.mkdir(parents=True, exist_ok=True)
    target, h = dest / name, hashlib.sha256()
    logger.info(f"fetching {url}")
    with urlopen(url) as resp, open(target, "wb") as out:
        while block := resp.read(1 << 20):
            h.update(block)
            out.write(block)
    got = h.hexdigest()
    logger.info(f"sha256 {got}  {name} (downloaded)")
    if sha256 and got != sha256:
        raise InputError(f"{url}: sha256 {got} differs from the pinned {sha256} (sources: the file changed upstream)")
    if not sha256:
        logger.warning(f"no sha256 pinned for {url}: pin {got} to notice upstream changes")
    if unpack:
        unpack_archives(dest)
    return checksums(dest)


def unpack_archives(dest: Path) -> None:
    """Extract every .zip under dest where it lies (then remove it), until none is left (BIRD nests one)."""
    while archives := sorted(p for p in dest.rglob("*.zip") if p.is_file()):
        for arc in archives:
            with zipfile.ZipFile(arc) as zf:
                for m in zf.infolist():
                    parts = [p for p in m.filename.split("/") if p]
                    if m.filename.startswith("/") or ".." in parts:
                        raise InputError(f"{arc}: member {m.filename!r} would be written outside {arc.parent}")
                zf.extractall(arc.parent)
            logger.info(f"unpacked {arc.relative_to(dest)}")
            arc.unlink()
    for junk in dest.rglob("__MACOSX"):
        shutil.rmtree(junk, ignore_errors=True)


def fetch(spec: dict, dest: Path, snapshot_download=None, urlopen=None) -> dict[str, str]:
    """A source as the config describes it: {hub_id, revision, repo_type, files} or {url, sha256, unpack}."""
    if spec.get("hub_id"):
        return fetch_hub(
            spec["hub_id"],
            spec.get("revision"),
            dest,
            spec.get("repo_type", "dataset"),
            spec.get("files") or (),
            snapshot_download,
        )
    if spec.get("url"):
        return fetch_url(spec["url"], dest, spec.get("sha256"), spec.get("unpack", False), urlopen)
    raise InputError("a source needs hub_id (with revision) or url")
