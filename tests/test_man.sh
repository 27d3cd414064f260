#!/bin/sh
# test_man.sh - the generated man pages and bash completion (docs/man/):
#   1. each man page (ADVJPG_MAN_DIR/PROGRAM.1) renders with groff without a
#      warning (-ww) and with man -l, and its text names every option that
#      `PROGRAM --help` mentions (advjpg: and every `advjpg COMMAND --help`);
#      skipped when help2man was missing at build time (no pages);
#   2. the completion (ADVJPG_COMPLETION) sourced in bash registers _advjpg for
#      advjpg (complete -p), completes a command ("cla" -> classify, every
#      command of `advjpg --help` for an empty word), a command's option
#      ("attack --ep" -> --eps), a global one, and file names for --labels.
# Exit 77 (meson: skipped) when groff and bash are both missing, 1 on a failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/lib.sh"
: "${ADVJPG_MAN_DIR:?}" "${ADVJPG_COMPLETION:?}" "${ADVJPGD:?}" "${ADVJPG:?}"
: "${ADVJPG_GEN:?}" "${ADVJPG_TRAIN:?}"
lib_tmp advjpg-man
failures=0
fail() {
    failures=$((failures + 1))
    echo "FAIL: $*" >&2
}

# every --option a help text mentions
help_options() {
    "$@" --help 2>&1 | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u
}

# ---- 1. the man pages ------------------------------------------------------

check_page() { # PAGE PROGRAM [COMMAND...]
    page=$1 prog=$2
    shift 2
    if [ ! -f "$page" ]; then
        fail "$page was not generated"
        return
    fi
    warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
    [ -z "$warn" ] || fail "$page: groff warns: $warn"
    LC_ALL=C MANWIDTH=100 man -l "$page" > "$tmp/man.txt" 2> "$tmp/man.err" ||
        fail "$page: man -l failed: $(cat "$tmp/man.err")"
    [ -s "$tmp/man.txt" ] || fail "$page: man -l gives nothing"
    # one line per paragraph, no hyphenation: every option whole
    groff -man -Tascii -rLL=2000n -P-cbou "$page" 2> /dev/null > "$tmp/wide.txt"
    help_options "$prog" > "$tmp/opts"
    for c in "$@"; do
        help_options "$prog" "$c" >> "$tmp/opts"
    done
    n=0
    for o in $(sort -u "$tmp/opts"); do
        n=$((n + 1))
        grep -q -- "$o" "$tmp/wide.txt" || fail "$page does not mention $o"
    done
    [ "$n" -gt 1 ] || fail "$prog --help lists no options ($n)"
    echo "$page: $n options, rendered without warnings"
}

commands=$("$ADVJPG" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | grep -v '^help$')
[ -n "$commands" ] || fail "advjpg --help lists no commands"

if ! command -v groff > /dev/null 2>&1 || ! command -v man > /dev/null 2>&1; then
    echo "SKIP: groff or man missing: the man pages are not checked"
    man_ran=0
elif ! ls "$ADVJPG_MAN_DIR"/*.1 > /dev/null 2>&1; then
    echo "SKIP: no man pages in $ADVJPG_MAN_DIR (help2man was missing at build time)"
    man_ran=0
else
    man_ran=1
    check_page "$ADVJPG_MAN_DIR/advjpgd.1" "$ADVJPGD"
    # shellcheck disable=SC2086 # one word per command
    check_page "$ADVJPG_MAN_DIR/advjpg.1" "$ADVJPG" $commands
    check_page "$ADVJPG_MAN_DIR/advjpg-gen.1" "$ADVJPG_GEN"
    check_page "$ADVJPG_MAN_DIR/advjpg-train.1" "$ADVJPG_TRAIN"
    for c in $commands; do
        grep -q "^\.SS $c\$" "$ADVJPG_MAN_DIR/advjpg.1" || fail "advjpg.1 has no section for $c"
    done
fi

# ---- 2. the bash completion ------------------------------------------------

if ! command -v bash > /dev/null 2>&1; then
    echo "SKIP: no bash: the completion is not checked"
    [ "$man_ran" = 1 ] || exit 77
else
    mkdir "$tmp/dir" && touch "$tmp/dir/labels-a.txt" "$tmp/dir/labels-b.txt"
    # complete WORD... : the candidates for the last word, one per line
    cat > "$tmp/complete.sh" << 'EOS'
. "$1"
shift
complete -p advjpg
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_advjpg
printf '%s\n' "${COMPREPLY[@]}"
EOS
    comp() {
        (cd "$tmp/dir" && bash "$tmp/complete.sh" "$ADVJPG_COMPLETION" "$@")
    }
    comp advjpg "" > "$tmp/c0" 2>&1 || fail "the completion fails: $(cat "$tmp/c0")"
    grep -q -- "-F _advjpg advjpg" "$tmp/c0" || fail "complete -p advjpg: $(head -1 "$tmp/c0")"
    for c in $commands; do
        grep -qx "$c" "$tmp/c0" || fail "an empty word does not offer the command $c"
    done
    [ "$(comp advjpg cla | tail -n +2)" = classify ] || fail "cla -> $(comp advjpg cla | tail -n +2)"
    comp advjpg attack img.jpg --ep | grep -qx -- --eps || fail "attack --ep does not give --eps"
    comp advjpg evaluate --wa | grep -qx -- --wait || fail "evaluate --wa does not give --wait"
    comp advjpg --server http://x:1 rows 1 --out | grep -qx -- --output ||
        fail "rows --out (after a global option with a value) does not give --output"
    comp advjpg classify --ser | grep -qx -- --server || fail "classify --ser does not give --server"
    comp advjpg classify --ep | grep -qx -- --eps && fail "classify offers attack's --eps"
    [ "$(comp advjpg evaluate --labels lab | tail -n +2 | sort | tr '\n' ' ')" = \
        "labels-a.txt labels-b.txt " ] || fail "evaluate --labels lab does not complete file names"
    comp advjpg evaluate --ground-truth "" | grep -qx labels-a.txt || fail "evaluate --ground-truth does not complete file names"
    echo "completion: commands, options and file names complete"
fi
[ "$failures" -eq 0 ] || exit 1
exit 0
