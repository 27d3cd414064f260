# common.sh - what every advjpg curl script shares; sourced by them, not run.
#
# Environment: ADVJPG_SERVER (default http://127.0.0.1:8080), ADVJPG_TOKEN
# (sent as "Authorization: Bearer ..." when set). Every script prints the
# server's answer (on an HTTP error its {"error": ...} body too) and exits
# 0 on success, 1 on a server or connection error, 2 on a usage error.
# shellcheck shell=sh

me=${0##*/}
server=${ADVJPG_SERVER:-http://127.0.0.1:8080}
server=${server%/}

# args "USAGE" MIN MAX "$@": -h/--help prints the usage line; another number
# of arguments than MIN..MAX is a usage error.
args() {
    usage="usage: $me $1"
    min=$2
    max=$3
    shift 3
    case ${1:-} in
        -h | --help)
            echo "$usage"
            # the script's header comment, but its usage line and the pointer here
            sed -n '2,/^[^#]/{
                /^# usage:/d
                /^# Environment and exit statuses/d
                /^#/s/^# \{0,1\}//p
            }' "$0"
            cat <<EOF
Environment:
  ADVJPG_SERVER  the server (default http://127.0.0.1:8080)
  ADVJPG_TOKEN   the bearer token of a server started with --token or
                 --token-file (given to curl on its standard input, never on
                 its command line)
Exit status: 0 success, 1 server or connection error (the server's JSON
error, if any, on standard output, curl's message on standard error),
2 usage error.
EOF
            exit 0
            ;;
    esac
    if [ $# -lt "$min" ] || [ $# -gt "$max" ]; then
        echo "$usage" >&2
        exit 2
    fi
}

# usage_error MESSAGE: one line on stderr, exit 2.
usage_error() {
    echo "$me: $*" >&2
    exit 2
}

# check_id ID: job ids are letters, digits, '.', '_' and '-'.
check_id() {
    case $1 in
        '' | *[!A-Za-z0-9._-]*) usage_error "'$1' is not a job id" ;;
    esac
}

# check_int NAME VALUE MIN MAX
check_int() {
    case $2 in
        '' | *[!0-9]*) usage_error "$1 is an integer from $3 to $4" ;;
    esac
    if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        usage_error "$1 is an integer from $3 to $4"
    fi
}

# check_eps NAME LIST: integers separated by commas.
check_eps() {
    case $2 in
        '' | *[!0-9,]* | ,* | *, | *,,*) usage_error "$1 is integers separated by commas, such as 1,5,10" ;;
    esac
}

# The attack menu from the environment: ATTACK (fgsm, bim, pgd, ll), STEPS,
# STEP_SIZE, ADAPTIVE (none, bpda, eot), EOT_QUALITIES (a list); unset ones
# are the server's defaults (fgsm, 10, 1, none, 50,60,70,75,80,90).
# check_attack checks the set ones; attack_query prints them as
# "&attack=...&steps=..." for a query string.
check_attack() {
    case ${ATTACK:-fgsm} in fgsm | bim | pgd | ll) ;; *) usage_error "ATTACK is fgsm, bim, pgd or ll" ;; esac
    case ${ADAPTIVE:-none} in none | bpda | eot) ;; *) usage_error "ADAPTIVE is none, bpda or eot" ;; esac
    [ -z "${STEPS:-}" ] || check_int STEPS "$STEPS" 1 10000
    [ -z "${STEP_SIZE:-}" ] || check_int STEP_SIZE "$STEP_SIZE" 1 255
    [ -z "${EOT_QUALITIES:-}" ] || check_eps EOT_QUALITIES "$EOT_QUALITIES"
}
attack_query() {
    for kv in "attack=${ATTACK:-}" "steps=${STEPS:-}" "step_size=${STEP_SIZE:-}" \
        "adaptive=${ADAPTIVE:-}" "eot_qualities=${EOT_QUALITIES:-}"; do
        [ -z "${kv#*=}" ] || printf '&%s' "$kv"
    done
}

# image_type IMG: sets $type from the file's first bytes, as advjpg does.
# shellcheck disable=SC2034
image_type() {
    if [ ! -f "$1" ] || [ ! -r "$1" ]; then
        usage_error "$1: no such readable file"
    fi
    case $(od -An -tx1 -N4 "$1" | tr -d ' \n') in
        ffd8ff*) type=image/jpeg ;;
        89504e47) type=image/png ;;
        5036* | 5035*) type=image/x-portable-pixmap ;;
        *) usage_error "$1: not a JPEG, PNG or PPM image" ;;
    esac
}

# The token reaches curl on its standard input (-H @-), not on its command
# line, where other users of the machine could read it.
auth() {
    if [ -n "${ADVJPG_TOKEN:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$ADVJPG_TOKEN"
    fi
}

# api CURL-ARGS...: one request with the token; exit 1 on any failure. On an
# HTTP error the server's body (its {"error": ...}) goes to stdout, ended by a
# newline, and then curl's own message to stderr, so the two never share a
# line on a terminal.
api() {
    rc=0
    # curl's stderr is held back (fd 3 keeps stdout) until the body's line ends
    { err=$(auth | curl -sS --fail-with-body -H @- "$@" 2>&1 >&3) || rc=$?; } 3>&1
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -ne 22 ] || echo
        [ -z "$err" ] || printf '%s\n' "$err" >&2
        exit 1
    fi
    [ -z "$err" ] || printf '%s\n' "$err" >&2
}
