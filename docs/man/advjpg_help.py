"""advjpg_help.py - what the programs' --help texts say, for the man pages
(gen_man.py), the bash completion (gen_completion.py) and their test.

The texts are the one source: the commands are the lines under "Commands:"
of `advjpg --help` (the client's command table, cli_commands[]), the options
of a text are the option lines ("  -k, --top-k K   ...") and the options of
its usage line ("usage: advjpg job ID [--wait [--interval S]]").
"""
import re
import subprocess

# "  -k, --top-k K  text", "      --resize MODE  text", "  --listen ADDR:PORT  text"
_OPTION_LINE = re.compile(r"^\s{1,8}(?:-(\w), )?--([a-z][a-z0-9-]*)(?: ([^\s]+))?(?:\s|$)")
_USAGE_OPTION = re.compile(r"--([a-z][a-z0-9-]*)(?: ([A-Z][A-Z0-9_|:.]*))?")


def help_text(program, *args):
    """The --help text of program (with args before --help), stdout and stderr."""
    run = subprocess.run([program, *args, "--help"], capture_output=True, text=True, check=False)
    return run.stdout + run.stderr


def commands(text):
    """[(name, summary)] of the "Commands:" list of a help text ('help' left out)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("Commands:"):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            name, _, summary = line.strip().partition(" ")
            if name != "help":
                out.append((name, summary.strip()))
    return out


def options(text):
    """{"--name": metavar or None} of a help text, "-k" short forms included."""
    out = {}
    for line in text.splitlines():
        m = _OPTION_LINE.match(line)
        if m:
            short, name, meta = m.groups()
            meta = meta if meta and (meta[0].isupper() or meta[0].isdigit()) else None
            out.setdefault("--" + name, meta)  # the first mention (examples come later)
            if short:
                out.setdefault("-" + short, meta)
    usage = [l for l in text.splitlines() if l.lower().startswith("usage:")]
    for line in usage:
        for name, meta in _USAGE_OPTION.findall(line):
            out.setdefault("--" + name, meta or None)
    return out
