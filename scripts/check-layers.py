#!/usr/bin/env python3
"""The folders of src/ as layers: a file may include headers of its own folder and of the folders
below its own, never of one above (which would make an include loop between folders possible).

    core <- kernels <- mixers <- model <- train <- cli
            tasks   <- config <- report

Exit status 0 when every include keeps to that, 1 with one line per include that does not
(FILE:LINE: folder A includes B, which is above it), 2 on a folder this script does not know.
    scripts/check-layers.py [SRC_DIR]        (default: src next to this script)
"""
import os
import re
import sys

# each folder with the folders it may include (besides itself); the order is the layers'
LAYERS = [
    ("core", set()),
    ("kernels", {"core"}),
    ("tasks", {"core"}),
    ("mixers", {"core", "kernels"}),
    ("config", {"core", "mixers", "tasks"}),
    ("model", {"core", "kernels", "mixers", "config"}),
    ("report", {"core", "config", "tasks"}),
    ("train", {"core", "kernels", "mixers", "config", "tasks", "model", "report"}),
    ("cli", {"core", "kernels", "mixers", "config", "tasks", "model", "report", "train"}),
]
ALLOWED = dict(LAYERS)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"')


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "src")
    bad = 0
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder)
        if not os.path.isdir(path):
            continue  # main.c: the top, it may include anything
        if folder not in ALLOWED:
            print("check-layers.py: %s: a folder the layers do not list (add it to LAYERS)"
                  % path, file=sys.stderr)
            return 2
        for root, _, files in os.walk(path):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                f = os.path.join(root, name)
                with open(f, encoding="utf-8") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1) != folder and m.group(1) not in ALLOWED[folder]:
                            print("%s:%d: %s includes %s, which is not below it"
                                  % (os.path.relpath(f), n, folder, m.group(1)))
                            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
