#!/bin/sh
# Installs what the tests and the demo need, only what is missing, on Debian: a local Dovecot
# (IMAP + LMTP), Postfix, Cyrus IMAP (the second server of tests/two_servers.rs) and PostgreSQL.
# Needs root or sudo. Called by tests/run.sh and examples/demo.sh.
set -eu

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
updated=""
apt_update() {
    # A fresh machine's package lists are stale: without the update, downloads 404.
    [ -n "$updated" ] || $sudo apt-get update -q
    updated=yes
}

# Real servers, never mocks: the harness starts its own Dovecot (IMAP + LMTP), Postfix and
# Cyrus on free loopback ports, from these packages. Nothing under /etc is used by the tests.
missing_from() {
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$pkg"
    done
}
install() {
    echo "tests/install-deps.sh: installing $*" >&2
    apt_update
    # Postfix asks questions at install time; noninteractive takes its defaults. The system
    # Postfix, Dovecot and Cyrus services are not what the tests use.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

missing=$(missing_from dovecot-imapd dovecot-lmtpd postfix)
[ -z "$missing" ] || install $missing

# PostgreSQL for the shared store (issue 10): the harness runs its own cluster (initdb, postgres)
# as the postgres user the package creates; psql (postgresql-client-N, a dependency) talks to it.
# The system cluster the package sets up is not used.
missing=$(missing_from postgresql)
[ -z "$missing" ] || install $missing

# Never cyrus-imapd: it and dovecot-imapd both provide imap-server, so apt would remove
# Dovecot. cyrus-common *recommends* cyrus-imapd, hence --no-install-recommends (without it,
# this very install removes Dovecot). cyrus-common has master, lmtpd and the libraries;
# sasl2-bin has saslpasswd2 for the test users.
missing=$(missing_from cyrus-common sasl2-bin)
if [ -n "$missing" ]; then
    install --no-install-recommends $missing
    # cyrus-common enables a system Cyrus reading /etc/cyrus.conf; without imapd it would only
    # hold ports. The tests start their own.
    if [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now cyrus-imapd.service >/dev/null 2>&1 || true
    fi
fi
# Checked, not assumed: a Dovecot removed on the way would fail every test later and obscurely.
missing=$(missing_from dovecot-imapd dovecot-lmtpd)
if [ -n "$missing" ]; then
    echo "tests/install-deps.sh:$missing got removed (is cyrus-imapd installed? it conflicts)" >&2
    exit 1
fi

# imapd and idled come from the cyrus-imapd package, unpacked (not installed) into a
# directory of the tests' own, in the same version as cyrus-common, whose libraries they use.
# tests/harness/cyrus.rs reads them from there.
cyrus_root=/opt/tidings-tests/cyrus-imapd
version=$(dpkg-query -W -f='${Version}' cyrus-common)
if [ ! -x "$cyrus_root/usr/lib/cyrus/bin/imapd" ] || [ "$(cat "$cyrus_root/VERSION" 2>/dev/null)" != "$version" ]; then
    echo "tests/install-deps.sh: unpacking cyrus-imapd $version into $cyrus_root" >&2
    download=$(mktemp -d)
    # apt-get download runs as the _apt user, which must be able to write there.
    chmod 777 "$download"
    if ! (cd "$download" && $sudo apt-get download -q "cyrus-imapd=$version"); then
        apt_update
        (cd "$download" && $sudo apt-get download -q "cyrus-imapd=$version")
    fi
    $sudo rm -rf "$cyrus_root"
    $sudo mkdir -p "$cyrus_root"
    $sudo dpkg-deb -x "$download"/cyrus-imapd_*.deb "$cyrus_root"
    echo "$version" | $sudo tee "$cyrus_root/VERSION" >/dev/null
    $sudo rm -rf "$download"
fi
