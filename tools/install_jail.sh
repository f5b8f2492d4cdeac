#!/usr/bin/env bash
# The sandbox's jail needs bubblewrap (`bwrap`, docs/sandbox.md). Where it is missing and this runs as root with
# apt (CI, containers), install it; otherwise say what to do. Idempotent; `make demo` and `make test` call it.
set -euo pipefail
command -v bwrap >/dev/null && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  command -v bwrap >/dev/null && exit 0
fi
echo "install_jail: bubblewrap is missing; install it (apt-get install bubblewrap / dnf install bubblewrap)," \
  "or set sandbox.isolation: none to run generated code without isolation (docs/sandbox.md)" >&2
exit 2
