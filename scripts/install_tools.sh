#!/usr/bin/env bash
# Installs the Rust dev tools `make fuzz` and `make deny` need into .tools/
# (all of them, or those named as arguments)
# (git-ignored), pinned and --locked. Idempotent: a tool already installed at the
# pinned version is skipped. From scratch (fresh CARGO_HOME, 2 cores): ~2.5 min.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=.tools
TOOLS=(
  "cargo-fuzz 0.13.2"
  "cargo-deny 0.20.2"
)

# With arguments, only the tools named (`install_tools.sh cargo-deny`).
for tool in "${TOOLS[@]}"; do
  read -r name version <<<"$tool"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then
    continue
  fi
  # .crates.toml is cargo install's own record of what is in $ROOT/bin.
  if [[ -x "$ROOT/bin/$name" ]] && grep -qF "\"$name $version " "$ROOT/.crates.toml" 2>/dev/null; then
    echo "install_tools: $name $version already in $ROOT/bin"
    continue
  fi
  echo "install_tools: installing $name $version into $ROOT/"
  start=$SECONDS
  # These are dev tools: trade cargo-deny's fat LTO / single codegen unit
  # (minutes of build on a 2-core CI machine) for a slightly slower binary.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --locked --quiet --root "$ROOT" --version "$version" "$name"
  echo "install_tools: $name $version installed in $((SECONDS - start)) s"
done
