#!/usr/bin/env python3
"""The conformance table: one line per case, runc's transcript against sm-runc's.

Usage: report.py EXPECTED WORKDIR GROUP...

Each group's transcripts are WORKDIR/reference-GROUP.txt and WORKDIR/candidate-GROUP.txt.
A transcript line "name: value" is one case, "GROUP/name" (a name seen twice gets #2, #3);
a line without ": " (indented output) belongs to the case before it. A case is
  same               both runtimes printed the same value,
  n/a (reason)       listed in EXPECTED as not applicable to a VM (not compared),
  intended (reason)  listed in EXPECTED as an intended difference (compared, differs, passes),
  differs            anything else: the run fails.
EXPECTED lines: "GROUP/name|n/a|reason" or "GROUP/name|intended|reason" (# comments);
a name with "*" is a pattern (fnmatch) over case names.
The last line is "conformance: N passed, M failed" (N = same, n/a and intended).
"""
import fnmatch
import sys


def cases(path, group):
    out, seen, last = {}, {}, None
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        lines = ["transcript: missing"]
    for line in lines:
        if ": " in line and not line.startswith((" ", "\t")):
            name, value = line.split(": ", 1)
            key = f"{group}/{name}"
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                key += f"#{seen[key]}"
            out[key] = value
            last = key
        elif last is not None:
            out[last] += "\n" + line
        else:
            key = f"{group}/(output)"
            out[key] = out.get(key, "") + line + "\n"
            last = key
    return out


def expected(path):
    rules = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind, reason = line.split("|", 2)
        rules.append((name, kind, reason))
    return rules


def rule_for(key, rules):
    for name, kind, reason in rules:
        if key == name or fnmatch.fnmatchcase(key, name):
            return kind, reason
    return None


def main():
    rules = expected(sys.argv[1])
    work = sys.argv[2]
    passed = failed = 0
    counts = {"same": 0, "n/a": 0, "intended": 0, "differs": 0}
    details = []
    width = 0
    rows = []
    for group in sys.argv[3:]:
        ref = cases(f"{work}/reference-{group}.txt", group)
        cand = cases(f"{work}/candidate-{group}.txt", group)
        keys = list(ref) + [k for k in cand if k not in ref]
        for key in keys:
            r, c = ref.get(key, "(missing)"), cand.get(key, "(missing)")
            rule = rule_for(key, rules)
            if rule and rule[0] == "n/a":
                status = f"n/a ({rule[1]})"
                counts["n/a"] += 1
            elif r == c:
                status = "same"
                counts["same"] += 1
            elif rule and rule[0] == "intended":
                status = f"intended ({rule[1]})"
                counts["intended"] += 1
            else:
                status = "differs"
                counts["differs"] += 1
                details.append((key, r, c))
            rows.append((key, status))
            width = max(width, len(key))
    for key, status in rows:
        print(f"{key.ljust(width)}  {status}")
    for key, r, c in details:
        print(f"\n{key} differs:")
        print("  runc:    " + r.replace("\n", "\n           "))
        print("  sm-runc: " + c.replace("\n", "\n           "))
    passed = counts["same"] + counts["n/a"] + counts["intended"]
    failed = counts["differs"]
    print(f"\nsame {counts['same']}, n/a {counts['n/a']}, intended differences {counts['intended']}, differs {counts['differs']}")
    print(f"conformance: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
