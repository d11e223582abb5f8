#!/usr/bin/env bash
# Checks the Prometheus alerting rules: `promtool check rules deploy/prometheus/alerts.yml`
# (syntax, PromQL, durations, templates) and `promtool test rules
# deploy/prometheus/alerts.test.yml` (each alert fires, and does not, on synthetic series).
#
# promtool comes from, in order: $PROMTOOL; `promtool` on the PATH; target/promtool/ (a
# previous run of this script); Debian's `prometheus` package, unpacked into target/promtool/
# with `apt-get download` and `dpkg-deb -x`, so that no Prometheus service is installed or
# started (`apt-get update` first if the package lists lack it, which needs root); and
# last, as root only, `apt-get install prometheus`.
#
# Usage: tools/check-alerts.sh        (from anywhere; it works at the repository root)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RULES=deploy/prometheus/alerts.yml
TESTS=deploy/prometheus/alerts.test.yml
DIR=target/promtool

say() { printf 'check-alerts: %s\n' "$*" >&2; }

# Unpacks Debian's prometheus package into $DIR; fails quietly if it cannot.
unpack_deb() {
    local tmp
    tmp=$(mktemp -d)
    # apt-get download writes into the current directory; as root it warns that the download
    # is unsandboxed, which is harmless here.
    if ! (cd "$tmp" && apt-get download prometheus >&2 2>"$tmp/err"); then
        if [[ $(id -u) == 0 ]] && grep -qi 'unable to locate\|has no installation candidate' "$tmp/err"; then
            say "the package lists lack prometheus: apt-get update"
            apt-get update -qq >&2
            (cd "$tmp" && apt-get download prometheus >&2) || { rm -rf "$tmp"; return 1; }
        else
            cat "$tmp/err" >&2
            rm -rf "$tmp"
            return 1
        fi
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$DIR"
    rm -rf "$tmp"
    [[ -x $DIR/usr/bin/promtool ]]
}

find_promtool() {
    if [[ -n ${PROMTOOL:-} ]]; then
        return
    fi
    if command -v promtool >/dev/null; then
        PROMTOOL=$(command -v promtool)
        return
    fi
    if [[ -x $DIR/usr/bin/promtool ]]; then
        PROMTOOL=$DIR/usr/bin/promtool
        return
    fi
    if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
        say "promtool not found: unpacking Debian's prometheus package into $DIR"
        if unpack_deb; then
            PROMTOOL=$DIR/usr/bin/promtool
            return
        fi
        if [[ $(id -u) == 0 ]]; then
            say "unpacking failed: apt-get install prometheus"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
            PROMTOOL=$(command -v promtool)
            return
        fi
    fi
    say "no promtool: install Debian's prometheus package (or Prometheus's release archive) or set PROMTOOL"
    exit 1
}

find_promtool
say "$("$PROMTOOL" --version 2>&1 | head -n 1) ($PROMTOOL)"
"$PROMTOOL" check rules "$RULES"
"$PROMTOOL" test rules "$TESTS"
