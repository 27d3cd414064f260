#!/usr/bin/env python3
"""gen_man.py - a man page from a program's --help text, with help2man.

    gen_man.py HELP2MAN PROGRAM DESCRIPTION OUTPUT [VERSION]

VERSION is given to help2man when the program has no --version. For advjpg
(a "Commands:" list in its --help), a COMMANDS section holds every
command's own --help text.
"""
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import advjpg_help  # noqa: E402


def roff_literal(text):
    """text as roff lines shown as they are (.nf): backslashes and leading dots escaped."""
    lines = []
    for line in text.rstrip("\n").splitlines():
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def include_text(program):
    """help2man's include file: the COMMANDS section, empty without commands."""
    cmds = advjpg_help.commands(advjpg_help.help_text(program))
    if not cmds:
        return ""
    parts = ["[COMMANDS]"]
    for name, _summary in cmds:
        parts += [".SS %s" % name, ".nf", roff_literal(advjpg_help.help_text(program, name)), ".fi"]
    return "\n".join(parts) + "\n"


def main(argv):
    if len(argv) not in (5, 6):
        sys.stderr.write(__doc__)
        return 2
    help2man, program, description, output = argv[1:5]
    cmd = [help2man, "--no-info", "--no-discard-stderr", "--name", description, "--output", output]
    if len(argv) == 6:
        cmd += ["--version-string", argv[5]]
    include = include_text(program)
    if not include:
        return subprocess.run(cmd + [program], check=False).returncode
    with tempfile.NamedTemporaryFile("w", suffix=".h2m", delete=False) as inc:
        inc.write(include)
    try:
        return subprocess.run(cmd + ["--include", inc.name, program], check=False).returncode
    finally:
        os.unlink(inc.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
