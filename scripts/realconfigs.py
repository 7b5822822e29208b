#!/usr/bin/python3
"""Serve every real uWSGI config of tests/realconfigs/ on gyre and/or Debian's uWSGI.

    scripts/realconfigs.py                      # gyre and uWSGI: served N/M each, why per file
    scripts/realconfigs.py --server gyre -v     # gyre only, with each file's rewrites
    scripts/realconfigs.py --update-expected    # rewrite tests/realconfigs/EXPECTED from gyre's run
    scripts/realconfigs.py searxng-dockerfiles-uwsgi.ini   # some files only

How a file is rewritten and run: tests/realconfigs/harness.py (and tests/realconfigs/README.md).
"""
import argparse
import collections
import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "realconfigs"))
import harness  # noqa: E402


def run_all(sources, server, jobs):
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda s: harness.run(s, server), sources))


def report(server, sources, outcomes, verbose):
    served = sum(o.ok for o in outcomes)
    print("== %s" % server)
    for src, o in zip(sources, outcomes):
        what = "FAIL  " + o.error
        if o.ok:
            what = "served" + ("  (%d warning line(s), first: %s)" % (len(o.warnings), o.warnings[0])
                               if o.warnings and server == "gyre" else "")
        print("  %-55s %5.1fs %s" % (o.name, o.seconds, what))
        if verbose:
            for r in o.rewrites:
                print("      rewrite: " + r)
    print("%s served %d/%d" % (server, served, len(outcomes)))
    return served


def lacking_options(sources, outcomes):
    """option -> files gyre fails that set it and gyre's --help does not list."""
    have = harness.gyre_options()
    lack = collections.Counter()
    first = collections.Counter()
    for src, o in zip(sources, outcomes):
        if o.ok:
            continue
        for name in sorted(set(harness.options_used(src))):
            if name not in have:
                lack[name] += 1
        first[harness.failing_option(o.error) or "(other: see the error line)"] += 1
    return lack, first


def write_expected(server, outcomes):
    path = harness.expected_path(server)
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Corpus files %s cannot serve%s: `file<TAB>first error line`.\n"
                "# tests/integration/test_realconfigs.py marks them xfail(strict=True)%s;\n"
                "# regenerate with  scripts/realconfigs.py --update-expected\n"
                % (server, " yet" if server == "gyre" else " on this machine",
                   "" if server == "gyre" else " under GYRE_REALCONFIG_SERVER=uwsgi"))
        for o in outcomes:
            if not o.ok:
                f.write("%s\t%s\n" % (o.name, o.error.replace("\t", " ")))
    print("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", help="corpus file names (default: all)")
    ap.add_argument("--server", choices=("gyre", "uwsgi", "both"), default="both")
    ap.add_argument("--jobs", type=int, default=2, help="files served at once (default 2)")
    ap.add_argument("--update-expected", action="store_true",
                    help="rewrite tests/realconfigs/EXPECTED (gyre's failures) and/or\n"
                         "EXPECTED.uwsgi (uWSGI's) from this run")
    ap.add_argument("-v", "--verbose", action="store_true", help="list each file's rewrites")
    args = ap.parse_args()
    sources = harness.corpus()
    if args.files:
        want = {os.path.basename(f) for f in args.files}
        sources = [s for s in sources if s.name in want]
    servers = ["gyre", "uwsgi"] if args.server == "both" else [args.server]
    if args.update_expected and args.files:
        ap.error("--update-expected needs the whole corpus")
    results = {}
    for server in servers:
        results[server] = run_all(sources, server, args.jobs)
        report(server, sources, results[server], args.verbose)
    if "gyre" in results:
        lack, first = lacking_options(sources, results["gyre"])
        print("== options gyre lacks, by files (failing on gyre) that set them")
        for name, n in lack.most_common():
            print("  %-32s %d" % (name, n))
        print("== what gyre's first error names, by files")
        for name, n in first.most_common():
            print("  %-32s %d" % (name, n))
    if args.update_expected:
        for server, outcomes in results.items():
            write_expected(server, outcomes)
    print("  ".join("%s served %d/%d" % (s, sum(o.ok for o in r), len(r))
                    for s, r in results.items()))


if __name__ == "__main__":
    main()
