#!/bin/sh
# docs/robustness.md promises only what a test checks, and names that test: every test it
# names must exist. Names are `suite: test` (tests/test_suite.c has START_TEST(test)),
# test_X "name" (tests/test_X.c), and cli_test "description" (a check of
# tests/cli_test.sh with that description; "KEY=VALUE" stands for the key it loops over).
# A renamed or removed test then fails here instead of leaving a promise unchecked.
set -u
doc=docs/robustness.md
[ -f "$doc" ] || { echo "docs_test: $doc missing"; exit 1; }
PY=${PYTHON:-/usr/bin/python3}
"$PY" - "$doc" <<'PY'
import re, sys

text = open(sys.argv[1]).read()
flat = " ".join(text.split())  # names may be wrapped over lines
missing, named = [], 0

def suite_has(suite, test):
    try:
        src = open("tests/test_%s.c" % suite).read()
    except OSError:
        return False
    return ("START_TEST(%s)" % test) in src

# `suite: test`
for suite, test in re.findall(r"`([a-z_]+): ([a-z0-9_]+)`", flat):
    if (suite, test) == ("suite", "test"):  # the form itself, in the introduction
        continue
    named += 1
    if not suite_has(suite, test):
        missing.append("%s: %s" % (suite, test))
# test_X "name", "name", ... up to the closing parenthesis or semicolon
cli = " ".join(open("tests/cli_test.sh").read().split())
for owner, names in re.findall(r'\b(test_[a-z_]+|cli_test) ((?:"[^"]+"(?:,? (?:and )?)?)+)', flat):
    for n in re.findall(r'"([^"]+)"', names):
        named += 1
        if owner == "cli_test":
            pattern = re.escape(n).replace("KEY=VALUE", r"[^\"]*")
            if not re.search(r'"' + pattern + r'"', cli) and not re.search(r'"' + pattern, cli):
                missing.append('cli_test "%s"' % n)
        elif not suite_has(owner[5:], n):
            missing.append('%s "%s"' % (owner, n))
if named < 40:
    print("docs_test: only %d test names found in %s: the patterns no longer match" % (named, sys.argv[1]))
    sys.exit(1)
if missing:
    print("docs_test: %s names tests that do not exist:" % sys.argv[1])
    for m in missing:
        print("  " + m)
    sys.exit(1)
print("docs_test: the %d tests named in %s exist" % (named, sys.argv[1]))
PY
