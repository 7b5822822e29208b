#!/usr/bin/python3
"""Which server/ file uses which: the dependency graph of gyre's server/, from its objects.

Reads `nm` of build/server/*.o (build them first: `make gyre`). A file depends on another when it
uses (nm: U) a symbol the other defines (T, D, B, R, ...). Prints, per file, the files it depends
on and which of their symbols it uses, then every cycle (strongly connected components of two or
more files). Exit status 1 when there is a cycle, so it can guard a build.

    scripts/deps-graph.py [--symbols] [build/server]
"""
import glob
import os
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbol names of one object."""
    out = subprocess.run(["nm", "-g", obj], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] not in ("U", "w", "v"):
            defined.add(parts[2])
    return defined, undefined


def strongly_connected(graph):
    """Tarjan's algorithm: the components of the graph, each a sorted list."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def main(argv):
    show_symbols = "--symbols" in argv
    args = [a for a in argv if not a.startswith("--")]
    objdir = args[0] if args else "build/server"
    objs = sorted(glob.glob(os.path.join(objdir, "*.o")))
    if not objs:
        sys.exit(f"no objects in {objdir}: build first (make gyre)")
    defined_by, uses = {}, {}
    for obj in objs:
        name = os.path.splitext(os.path.basename(obj))[0]
        defined, undefined = symbols(obj)
        for sym in defined:
            defined_by[sym] = name
        uses[name] = undefined
    graph = {name: {} for name in uses}
    for name, undefined in uses.items():
        for sym in sorted(undefined):
            owner = defined_by.get(sym)
            if owner and owner != name:
                graph[name].setdefault(owner, []).append(sym)

    width = max(len(n) for n in graph)
    for name in sorted(graph):
        deps = sorted(graph[name])
        print(f"{name:<{width}} -> {' '.join(deps) if deps else '(none)'}")
        if show_symbols:
            for dep in deps:
                print(f"{'':<{width}}    {dep}: {' '.join(graph[name][dep])}")

    cycles = [c for c in strongly_connected({n: set(d) for n, d in graph.items()}) if len(c) > 1]
    pairs = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph[b])
    print()
    if not cycles:
        print("cycles: none")
        return 0
    print(f"cycles: {len(cycles)} strongly connected group(s)")
    for comp in cycles:
        print("  " + " ".join(comp))
    print(f"2-cycles: {len(pairs)}")
    for a, b in pairs:
        print(f"  {a} <-> {b}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
