#!/bin/sh
# container-entrypoint.sh - the entry point of the advjpg container image
# (deploy/Containerfile): starts advjpgd with the jobs in the volume and, when
# it listens beyond the container's loopback, only with a bearer token.
#
#   container-entrypoint.sh [ADVJPGD OPTION]...
#   container-entrypoint.sh --run REQUEST.json --out DIR [ADVJPGD OPTION]...
#   container-entrypoint.sh merge DIR... --out DIR
#
# With --run among the arguments (batch mode: one evaluation, no HTTP) they
# go to advjpgd as they are: nothing listens, so no token is needed. With
# merge first, they go to the client (advjpg merge; ADVJPG names it, default
# /usr/local/bin/advjpg). These are the Kubernetes Indexed Job's and merge
# Job's commands (deploy/kubernetes/advjpg-batch.yaml).
#
# advjpgd gets --listen ADVJPGD_LISTEN (default 0.0.0.0:8080) and --jobs-dir
# ADVJPGD_JOBS_DIR (default /var/lib/advjpg/jobs), then these arguments (a
# --listen or --jobs-dir among them wins: the later option does).
#
# The token, the first of:
#   --token T / --token-file F   among the arguments;
#   ADVJPGD_TOKEN_FILE           a file whose first line is the token (a mounted
#                                secret, e.g. /run/secrets/advjpg-token);
#   ADVJPGD_TOKEN                the token itself: written to a file of mode 600
#                                in $TMPDIR (default /tmp) and passed with
#                                --token-file, so that it is not in the
#                                process list; the variable is unset.
# Without one, and an address that is not a loopback one (127.*, localhost,
# [::1]), it refuses to start (exit 2) unless ADVJPGD_ALLOW_NO_TOKEN=1 says
# that something in front (a reverse proxy, deploy/nginx.conf) does the
# authentication.
#
# ADVJPGD names the daemon (default /usr/local/bin/advjpgd; the tests point it
# elsewhere). Exit status: advjpgd's (this script execs it), 2 on a refusal.
set -eu

ADVJPGD=${ADVJPGD:-/usr/local/bin/advjpgd}
listen=${ADVJPGD_LISTEN:-0.0.0.0:8080}
jobs_dir=${ADVJPGD_JOBS_DIR:-/var/lib/advjpg/jobs}

if [ "${1:-}" = merge ]; then
    exec "${ADVJPG:-/usr/local/bin/advjpg}" "$@"
fi
for a in "$@"; do
    if [ "$a" = --run ]; then
        exec "$ADVJPGD" "$@"
    fi
done

# What the arguments say: the last --listen, and whether a token is given.
has_token=""
expect=""
for a in "$@"; do
    case $expect in
        listen) listen=$a ;;
    esac
    expect=""
    case $a in
        --listen) expect=listen ;;
        --listen=*) listen=${a#--listen=} ;;
        --token | --token-file | --token=* | --token-file=*) has_token=1 ;;
    esac
done

token_file=""
if [ -z "$has_token" ]; then
    if [ -n "${ADVJPGD_TOKEN_FILE:-}" ]; then
        token_file=$ADVJPGD_TOKEN_FILE
    elif [ -n "${ADVJPGD_TOKEN:-}" ]; then
        token_file=$(umask 077 && mktemp "${TMPDIR:-/tmp}/advjpgd-token.XXXXXX")
        printf '%s\n' "$ADVJPGD_TOKEN" >"$token_file"
    fi
fi
unset ADVJPGD_TOKEN

case $listen in
    127.* | localhost:* | \[::1\]:*) loopback=1 ;;
    *) loopback="" ;;
esac
if [ -z "$has_token" ] && [ -z "$token_file" ] && [ -z "$loopback" ]; then
    if [ "${ADVJPGD_ALLOW_NO_TOKEN:-}" = 1 ]; then
        echo "advjpg container: listening on $listen without a token (ADVJPGD_ALLOW_NO_TOKEN=1)" >&2
    else
        echo "advjpg container: refusing to listen on $listen without a token: set ADVJPGD_TOKEN" \
            "or ADVJPGD_TOKEN_FILE (or pass --token-file), or ADVJPGD_ALLOW_NO_TOKEN=1 when a" \
            "proxy in front authenticates" >&2
        exit 2
    fi
fi

if [ -n "$token_file" ]; then
    exec "$ADVJPGD" --listen "$listen" --jobs-dir "$jobs_dir" --token-file "$token_file" "$@"
fi
exec "$ADVJPGD" --listen "$listen" --jobs-dir "$jobs_dir" "$@"
