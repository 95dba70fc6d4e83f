#!/usr/bin/env bash
# Publish this example's upstream packages as git repositories under DEST, standing in for
# the remotes named in ../cmod.toml. Dates and identities are fixed, so every commit id is
# the same on every machine (the example pins one by `rev`).
#
#   upstream/publish.sh /tmp/upstream
#   export CMOD_GIT_REWRITE="https://git.example.com/cmod-examples/=file:///tmp/upstream/"
#   cmod realise
set -euo pipefail
dest=${1:?usage: publish.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
export GIT_AUTHOR_NAME=cmod GIT_AUTHOR_EMAIL=examples@cmod.invalid
export GIT_COMMITTER_NAME=cmod GIT_COMMITTER_EMAIL=examples@cmod.invalid
day=0

# publish NAME VERSION...: one commit and one `v<VERSION>` tag per version.
publish() {
  local name=$1 repo=$dest/$1.git
  shift
  rm -rf "$repo"
  mkdir -p "$repo"
  git -C "$repo" init -q -b main
  for v in "$@"; do
    day=$((day + 1))
    (cd "$here/$name" && find . -type f ! -name '*.in' | while read -r f; do
      mkdir -p "$repo/$(dirname "$f")" && cp "$f" "$repo/$f"
    done)
    sed "s/@VERSION@/$v/g" "$here/$name/cmod.toml.in" > "$repo/cmod.toml"
    mkdir -p "$repo/src"
    for f in "$here/$name"/src/*.in; do
      sed "s/@VERSION@/$v/g" "$f" > "$repo/src/$(basename "$f" .in)"
    done
    git -C "$repo" add -A
    GIT_AUTHOR_DATE="2026-01-$(printf %02d $day)T00:00:00Z" GIT_COMMITTER_DATE="2026-01-$(printf %02d $day)T00:00:00Z" \
      git -C "$repo" commit -q -m "$name $v"
    git -C "$repo" tag "v$v"
  done
}

publish greeting 1.0.0 1.1.0
publish numbers 1.0.0 1.2.3 1.10.0 2.0.0
publish colors 0.1.0 0.2.0
