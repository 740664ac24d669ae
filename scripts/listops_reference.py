#!/usr/bin/env python3
"""Statistics of ListOps trees drawn by the procedure of LRA's generator.

The Long Range Arena publishes its ListOps generator (lra_benchmarks/data/listops.py) and its
settings, not statistics of the data. This script is an independent Python model of that
procedure, written from its description: a node at depth d < max_depth is a digit with
probability 0.75 (always at max_depth), else one of MIN, MAX, MED, SM with 2..max_args children;
its length counts 2 per operator (the operator and its closing bracket) plus 1 per digit; trees
are kept when min_length < length < max_length; MED is the integer part of the median, SM the
sum mod 10. It prints the length deciles, the distribution of tree depth and of the label, which
tests/test_listops.c compares with the C generator's at the same settings.

    python3 scripts/listops_reference.py [N] [SEED]
"""
import random
import statistics
import sys

VALUE_P = 0.25


def tree(rng, depth, max_depth, max_args):
    """(value, length, depth of the deepest node) of a random tree rooted at depth."""
    if depth < max_depth and rng.random() <= VALUE_P:
        n = rng.randint(2, max_args)
        vals, length, deepest = [], 2, depth
        for _ in range(n):
            v, l, d = tree(rng, depth + 1, max_depth, max_args)
            vals.append(v)
            length += l
            deepest = max(deepest, d)
        op = rng.randrange(4)
        if op == 0:
            v = min(vals)
        elif op == 1:
            v = max(vals)
        elif op == 2:
            v = int(statistics.median(vals))
        else:
            v = sum(vals) % 10
        return v, length, deepest
    return rng.randrange(10), 1, depth


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    sys.setrecursionlimit(10000)
    lengths, depths, labels = [], [0] * 11, [0] * 10
    tries = 0
    while len(lengths) < n:
        tries += 1
        v, length, deepest = tree(rng, 1, 10, 10)
        if 500 < length < 2000:
            lengths.append(length)
            depths[deepest] += 1
            labels[v] += 1
    lengths.sort()
    print(f"{n} trees kept of {tries} drawn")
    print("length deciles", [lengths[n * k // 10] for k in range(1, 10)])
    print("depth %", [round(100 * c / n, 2) for c in depths])
    print("label %", [round(100 * c / n, 2) for c in labels])


if __name__ == "__main__":
    main()
