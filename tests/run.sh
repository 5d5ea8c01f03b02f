#!/bin/sh
# The whole test suite, from a fresh Debian machine: installs what the tests need (only what is
# missing), then builds and runs every test. The README gives this command and .ci/run calls it;
# keep the three in step.
set -eu
cd "$(dirname "$0")/.."

# Real servers, never mocks: the harness starts its own Dovecot (IMAP + LMTP) and Postfix on
# free loopback ports, from these packages. Nothing under /etc is used by the tests.
packages="dovecot-imapd dovecot-lmtpd postfix"
missing=""
for pkg in $packages; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "tests/run.sh: installing$missing" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    # A fresh machine's package lists are stale: without the update, downloads 404.
    $sudo apt-get update -q
    # Postfix asks questions at install time; noninteractive takes its defaults. The system
    # Postfix and Dovecot services are not what the tests use.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
cargo test --locked --doc
