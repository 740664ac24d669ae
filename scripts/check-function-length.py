#!/usr/bin/env python3
"""No function body longer than 80 lines in the folders of src/ a reader starts from (issue 21).

A function's length is counted from its opening line (the first line of its signature) to its
closing brace, both included. C text is read as tokens only as far as needed: comments, string
and character literals and preprocessor lines (with their continuations) are skipped, so a brace
in them does not count; a top-level brace opens a function when the text before it has a
parameter list (it ends with one) and is not a struct, union or enum.

Exit status 0 when every function keeps to the limit, 1 with one line per function that does not
(FILE:LINE: NAME is N lines, above the limit of 80), 2 on a folder that does not exist.
    scripts/check-function-length.py [--max N] [SRC_DIR [FOLDER...]]
        (default: src next to this script, folders model cli config, and SRC_DIR/main.c)
"""
import os
import re
import sys

FOLDERS = ("model", "cli", "config")
LIMIT = 80
NOT_FUNCTION = re.compile(r"^\s*(typedef|struct|union|enum)\b")
NAME = re.compile(r"([A-Za-z_]\w*)\s*$")


def strip(text):
    """text with comments, literals and preprocessor lines blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#" or (line_start and c in " \t" and
                                       text[i:].lstrip(" \t").startswith("#")):
            while i < n:  # the directive and its continuation lines
                j = text.find("\n", i)
                j = n if j < 0 else j
                cont = text[i:j].rstrip().endswith("\\")
                out.append("\n" if j < n else "")
                i = j + 1
                if not cont:
                    break
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        line_start = c == "\n"
        i += 1
    return "".join(out)


def functions(path):
    """(name, first line, length) of every function defined in the C file at path."""
    with open(path, encoding="utf-8") as f:
        code = strip(f.read())
    found, depth, start, head, name = [], 0, None, [], None
    line = 1
    stmt_line = None  # first line with text of the current top-level statement
    for c in code:
        if c == "\n":
            line += 1
            if depth == 0:
                head.append(" ")
            continue
        if depth == 0:
            if c in ";}":
                head, stmt_line = [], None
                continue
            if c == "{":
                text = "".join(head).rstrip()
                name, start = None, None
                if text.endswith(")") and not NOT_FUNCTION.match(text):
                    level, k = 0, len(text) - 1  # back to the parameter list's "("
                    while k >= 0:
                        level += {")": 1, "(": -1}.get(text[k], 0)
                        if level == 0:
                            break
                        k -= 1
                    m = NAME.search(text[:k])
                    name, start = (m.group(1) if m else "?"), stmt_line
                depth = 1
                continue
            if not c.isspace() and stmt_line is None:
                stmt_line = line
            head.append(c)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                if name is not None:
                    found.append((name, start, line - start + 1))
                head, stmt_line, name = [], None, None
    return found


def main(argv):
    limit = LIMIT
    if len(argv) > 1 and argv[0] == "--max":
        limit, argv = int(argv[1]), argv[2:]
    src = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "src")
    folders = argv[1:] or FOLDERS
    files = [os.path.join(src, "main.c")] if not argv[1:] else []
    for folder in folders:
        path = os.path.join(src, folder)
        if not os.path.isdir(path):
            print("check-function-length.py: %s: no such folder" % path, file=sys.stderr)
            return 2
        for root, _, names in os.walk(path):
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".c")]
    bad = 0
    for f in files:
        if not os.path.exists(f):
            continue
        for name, first, length in functions(f):
            if length > limit:
                print("%s:%d: %s is %d lines, above the limit of %d"
                      % (os.path.relpath(f), first, name, length, limit))
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
