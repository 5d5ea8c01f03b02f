#!/bin/sh
# The whole test suite, from a fresh Debian machine: installs what the tests need (only what is
# missing), then builds and runs every test. The README gives this command and .ci/run calls it;
# keep the three in step.
set -eu
cd "$(dirname "$0")/.."

# Real servers, never mocks: the local Dovecot and Postfix the harness starts (only what is
# missing is installed).
tests/install-deps.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
cargo test --locked --doc
