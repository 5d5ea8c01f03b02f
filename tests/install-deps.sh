#!/bin/sh
# Installs what the tests and the demo need, only what is missing, on Debian: a local Dovecot
# (IMAP + LMTP) and Postfix. Needs root or sudo. Called by tests/run.sh and examples/demo.sh.
set -eu

# Real servers, never mocks: the harness starts its own Dovecot (IMAP + LMTP) and Postfix on
# free loopback ports, from these packages. Nothing under /etc is used by the tests.
packages="dovecot-imapd dovecot-lmtpd postfix"
missing=""
for pkg in $packages; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "tests/install-deps.sh: installing$missing" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    # A fresh machine's package lists are stale: without the update, downloads 404.
    $sudo apt-get update -q
    # Postfix asks questions at install time; noninteractive takes its defaults. The system
    # Postfix and Dovecot services are not what the tests use.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi
