#!/bin/sh
# The demo of the main job, from a fresh Debian machine: installs Dovecot and Postfix if they are
# missing, starts them on 127.0.0.1 in a temp dir, runs tidings with the example rules, delivers
# the sample mail in examples/mail and shows where each message went. Needs root.
#   examples/demo.sh [--verbose]     (--verbose streams tidings' log as it runs)
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "examples/demo.sh needs root: it starts its own Dovecot and Postfix (Postfix's master" >&2
    echo "must start as root) and installs them if missing. Run it as root, e.g.:" >&2
    echo "  sudo env PATH=\"\$PATH\" examples/demo.sh" >&2
    exit 1
fi

tests/install-deps.sh
# The demo runs the real binary, target/debug/tidings: build it first (an example does not).
cargo build --locked --bin tidings
cargo run --locked --example demo -- "$@"
