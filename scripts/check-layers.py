#!/usr/bin/python3
"""check-layers.py: fail when the folders of src/ include each other in a loop.

What it checks
  Every quoted include in src/**/*.c and src/**/*.h, such as
  `#include "cache/store.h"`, that names a header in a folder of src/ (core,
  http, http1, net, config, cache, proxy, admin, api, metrics, main, and any
  folder added later). A file in folder A that includes a header in folder B
  (A != B) is an edge A -> B. Angle-bracket includes (`#include <cairn/...>`,
  the public headers under include/) and system headers are not folders of
  src/ and are ignored, and so are includes inside comments.

  It finds the strongly connected components of the folder graph (Tarjan).
  Each component with more than one folder is a cycle. For each one it prints
  the folders, one loop through them, and for each edge inside the component
  one example `file:line: #include "..."` that creates it. It exits 1 when
  there is a cycle and 0 otherwise.

Why
  The folders must form a layered graph with no loop: a folder may use the
  folders below it and never the ones above it. Then a new protocol or
  transport is an addition (a new folder on top of the ones it uses), not an
  edit across the tree, and each layer can be built and tested without the
  ones above it.

Usage
  scripts/check-layers.py            check; print the cycles, if any
  scripts/check-layers.py --print    edges with counts, sorted, then the
                                     layering (topological order) when acyclic
  scripts/check-layers.py --dot      the folder graph in Graphviz dot (cycle
                                     edges in red)
  scripts/check-layers.py --selftest check the checker on a synthetic tree
  --root DIR                         the tree to check (default: this repo)

Exit status: 0 no cycle, 1 cycle (in every mode), 2 usage or I/O error.
Standard library only; run it with /usr/bin/python3.
"""

import argparse
import os
import posixpath
import re
import subprocess
import sys
import tempfile

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"')
SOURCE_EXTS = (".c", ".h")


def strip_comments(text):
    """Blank out C comments, keeping newlines so line numbers stay true.

    String and character literals are kept, so "/*" inside a string does not
    start a comment.
    """
    out = []
    i, n = 0, len(text)
    state = "code"
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if state == "code":
            if ch == "/" and nxt == "*":
                state = "block"
                out.append("  ")
                i += 2
                continue
            if ch == "/" and nxt == "/":
                state = "line"
                out.append("  ")
                i += 2
                continue
            if ch == '"':
                state = "string"
            elif ch == "'":
                state = "char"
            out.append(ch)
        elif state == "block":
            if ch == "*" and nxt == "/":
                state = "code"
                out.append("  ")
                i += 2
                continue
            out.append("\n" if ch == "\n" else " ")
        elif state == "line":
            if ch == "\\" and nxt == "\n":
                out.append(" \n")
                i += 2
                continue
            if ch == "\n":
                state = "code"
                out.append("\n")
            else:
                out.append(" ")
        else:  # string or char literal
            quote = '"' if state == "string" else "'"
            if ch == "\\" and nxt:
                out.append(ch + nxt)
                i += 2
                continue
            if ch == quote or ch == "\n":
                state = "code"
            out.append(ch)
        i += 1
    return "".join(out)


class Graph:
    def __init__(self, folders):
        self.folders = sorted(folders)
        # (a, b) -> list of (relpath, line, include text), in file/line order
        self.edges = {}

    def add(self, a, b, where):
        self.edges.setdefault((a, b), []).append(where)

    def succ(self):
        s = {f: [] for f in self.folders}
        for (a, b) in sorted(self.edges):
            s.setdefault(a, []).append(b)
            s.setdefault(b, [])
        return s


def target_folder(src, folders, file_dir, inc):
    """Folder of src/ that a quoted include resolves to, or None.

    A quoted include is looked up next to the including file first, then in
    the include path (src/, where "folder/file.h" is the house style).
    """
    local = os.path.normpath(os.path.join(file_dir, inc))
    if os.path.isfile(local):
        rel = os.path.relpath(local, src)
        if rel.startswith(os.pardir + os.sep) or os.sep not in rel:
            return None  # outside src/, or directly in src/: no folder
        return rel.split(os.sep, 1)[0]
    norm = posixpath.normpath(inc)
    first = norm.split("/", 1)[0]
    if "/" in norm and first in folders:
        return first
    return None


def scan(root):
    src = os.path.join(root, "src")
    if not os.path.isdir(src):
        raise OSError("no src/ folder in %s" % root)
    folders = {d for d in os.listdir(src)
               if os.path.isdir(os.path.join(src, d)) and not d.startswith(".")}
    g = Graph(folders)
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SOURCE_EXTS):
                files.append(os.path.join(dirpath, name))
    for path in files:
        rel_src = os.path.relpath(path, src)
        if os.sep not in rel_src:
            continue  # a file directly in src/ belongs to no folder
        a = rel_src.split(os.sep, 1)[0]
        with open(path, encoding="utf-8", errors="replace") as f:
            text = strip_comments(f.read())
        for lineno, line in enumerate(text.split("\n"), 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            b = target_folder(src, folders, os.path.dirname(path), m.group(1))
            if b is None or b == a:
                continue
            relpath = os.path.relpath(path, root).replace(os.sep, "/")
            g.add(a, b, (relpath, lineno, '#include "%s"' % m.group(1)))
    return g


def tarjan(succ):
    """Strongly connected components, iterative (no recursion limit)."""
    index = {}
    low = {}
    on_stack = set()
    stack = []
    comps = []
    counter = 0
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, 0)]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, i = work[-1]
            if i < len(succ[v]):
                work[-1] = (v, i + 1)
                w = succ[v][i]
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return comps


def cycles(g):
    """Components with more than one folder, sorted."""
    return sorted(c for c in tarjan(g.succ()) if len(c) > 1)


def one_loop(g, comp):
    """A shortest loop through the first folder of a component."""
    members = set(comp)
    succ = g.succ()
    start = comp[0]
    prev = {}
    queue = [start]
    seen = {start}
    for v in queue:
        for w in succ[v]:
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in seen:
                seen.add(w)
                prev[w] = v
                queue.append(w)
    return comp + [comp[0]]


def layers(g):
    """Layer of each folder: 0 includes no other folder, else 1 + max below."""
    succ = g.succ()
    level = {}
    for v in topo_order(g):
        level[v] = 1 + max((level[w] for w in succ[v]), default=-1)
    out = {}
    for v, k in level.items():
        out.setdefault(k, []).append(v)
    return [sorted(out[k]) for k in sorted(out)]


def topo_order(g):
    """Folders, each after every folder it includes (acyclic graphs only)."""
    succ = g.succ()
    pending = {v: len(succ[v]) for v in succ}
    users = {v: [] for v in succ}
    for v in succ:
        for w in succ[v]:
            users[w].append(v)
    ready = sorted(v for v, k in pending.items() if k == 0)
    order = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for u in users[v]:
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
        ready.sort()
    return order


def report_cycles(g, comps, out):
    if not comps:
        return
    print("check-layers: %d include cycle(s) between src/ folders:" % len(comps),
          file=out)
    for n, comp in enumerate(comps, 1):
        members = set(comp)
        print("", file=out)
        print("cycle %d: %s" % (n, ", ".join(comp)), file=out)
        print("  loop: %s" % " -> ".join(one_loop(g, comp)), file=out)
        for (a, b) in sorted(g.edges):
            if a in members and b in members:
                where = g.edges[(a, b)]
                f, line, inc = where[0]
                print("  %s -> %s (%d include%s), e.g. %s:%d: %s"
                      % (a, b, len(where), "" if len(where) == 1 else "s",
                         f, line, inc), file=out)


def print_graph(g, comps, out):
    for (a, b) in sorted(g.edges):
        k = len(g.edges[(a, b)])
        print("%s -> %s: %d include%s" % (a, b, k, "" if k == 1 else "s"),
              file=out)
    isolated = [f for f in g.folders
                if not any(f in e for e in g.edges)]
    if isolated:
        print("(no edges: %s)" % ", ".join(isolated), file=out)
    print("", file=out)
    if comps:
        report_cycles(g, comps, out)
        print("", file=out)
        print("no layering: the graph has a cycle", file=out)
        return
    print("layering (each folder includes only folders in layers below it):",
          file=out)
    for k, names in enumerate(layers(g)):
        print("  %d: %s" % (k, " ".join(names)), file=out)
    print("topological order: %s" % " ".join(topo_order(g)), file=out)


def print_dot(g, comps, out):
    in_cycle = {}
    for n, comp in enumerate(comps, 1):
        for f in comp:
            in_cycle[f] = n
    print("digraph cairn_layers {", file=out)
    print("  rankdir=BT;", file=out)
    print("  node [shape=box];", file=out)
    for f in g.folders:
        attr = ' color=red' if f in in_cycle else ""
        print('  "%s" [label="%s"%s];' % (f, f, attr), file=out)
    for (a, b) in sorted(g.edges):
        k = len(g.edges[(a, b)])
        attr = 'label="%d"' % k
        if a in in_cycle and in_cycle.get(a) == in_cycle.get(b):
            attr += " color=red fontcolor=red"
        print('  "%s" -> "%s" [%s];' % (a, b, attr), file=out)
    print("}", file=out)


# ---------------------------------------------------------------- self-test

def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _tree(root, cyclic):
    """a -> b -> c (-> a when cyclic), d -> a outside the loop, plus noise."""
    _write(root, "include/cairn/pub.h", "#pragma once\n")
    _write(root, "src/a/a.h", "#pragma once\n#include <cairn/pub.h>\n")
    _write(root, "src/a/a.c",
           '#include "a/a.h"\n'            # same folder: no edge
           '#include "a.h"\n'              # relative, same folder: no edge
           '#include <stdio.h>\n'
           '#include "cairn/pub.h"\n'      # not a folder of src/
           '#  include   "b/b.h"\n'        # a -> b, line 5
           + ('' if cyclic else '#include "c/c.h"\n'))
    _write(root, "src/b/b.h",
           "#pragma once\n"
           '// #include "a/a.h"\n'         # commented out: no edge
           "/* a block comment\n"
           '#include "a/a.h"\n'            # inside the block: no edge
           "*/\n"
           'static const char *s = "/*";\n'
           '#include "c/c.h"\n')           # b -> c, line 7
    _write(root, "src/b/b.c", '#include "b/b.h"\n#include "../c/c.h"\n')  # b -> c
    _write(root, "src/c/c.h", "#pragma once\n")
    _write(root, "src/c/c.c",
           '#include "c/c.h"\n'
           + ('#include "a/a.h"\n' if cyclic else ""))  # c -> a, line 2
    _write(root, "src/d/d.c", '#include "a/a.h"\n#include "missing.h"\n')  # d -> a
    _write(root, "src/top.c", '#include "a/a.h"\n')  # in no folder: ignored


def selftest():
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    me = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory(prefix="check-layers-") as tmp:
        cyc = os.path.join(tmp, "cyclic")
        acy = os.path.join(tmp, "acyclic")
        _tree(cyc, cyclic=True)
        _tree(acy, cyclic=False)

        g = scan(cyc)
        check(g.folders == ["a", "b", "c", "d"], "folders: %r" % g.folders)
        check(sorted(g.edges) == [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")],
              "cyclic edges: %r" % sorted(g.edges))
        check(g.edges.get(("a", "b"), [None])[0]
              == ("src/a/a.c", 5, '#include "b/b.h"'),
              "a->b example: %r" % g.edges.get(("a", "b")))
        check(g.edges.get(("b", "c"))
              == [("src/b/b.c", 2, '#include "../c/c.h"'),
                  ("src/b/b.h", 7, '#include "c/c.h"')],
              "b->c examples: %r" % g.edges.get(("b", "c")))
        check(g.edges.get(("c", "a"))
              == [("src/c/c.c", 2, '#include "a/a.h"')],
              "c->a example: %r" % g.edges.get(("c", "a")))
        check(cycles(g) == [["a", "b", "c"]], "cycles: %r" % cycles(g))
        check(one_loop(g, ["a", "b", "c"]) == ["a", "b", "c", "a"],
              "loop: %r" % one_loop(g, ["a", "b", "c"]))

        g = scan(acy)
        check(sorted(g.edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("d", "a")],
              "acyclic edges: %r" % sorted(g.edges))
        check(cycles(g) == [], "acyclic cycles: %r" % cycles(g))
        check(layers(g) == [["c"], ["b"], ["a"], ["d"]], "layers: %r" % layers(g))
        check(topo_order(g) == ["c", "b", "a", "d"], "order: %r" % topo_order(g))

        def run(*args):
            p = subprocess.run([sys.executable, me] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            return p.returncode, p.stdout + p.stderr

        rc, out = run("--root", cyc)
        check(rc == 1, "cyclic exit %d" % rc)
        check("1 include cycle(s)" in out and "cycle 1: a, b, c" in out,
              "cyclic report:\n" + out)
        check("a -> b (1 include), e.g. src/a/a.c:5: #include \"b/b.h\"" in out,
              "a->b line:\n" + out)
        check("c -> a (1 include), e.g. src/c/c.c:2: #include \"a/a.h\"" in out,
              "c->a line:\n" + out)
        check("b -> c (2 includes), e.g. src/b/b.c:2:" in out,
              "b->c line:\n" + out)
        check("d ->" not in out, "d is not in the cycle:\n" + out)
        rc, out = run("--root", cyc, "--print")
        check(rc == 1 and "no layering" in out and "d -> a: 1 include\n" in out,
              "cyclic --print (%d):\n%s" % (rc, out))
        rc, out = run("--root", cyc, "--dot")
        check(rc == 1 and out.startswith("digraph")
              and '"c" -> "a" [label="1" color=red' in out
              and '"d" -> "a" [label="1"];' in out,
              "cyclic --dot (%d):\n%s" % (rc, out))

        rc, out = run("--root", acy)
        check(rc == 0 and "include cycle" not in out, "acyclic exit %d:\n%s" % (rc, out))
        rc, out = run("--root", acy, "--print")
        check(rc == 0 and "b -> c: 2 includes" in out
              and "topological order: c b a d" in out,
              "acyclic --print (%d):\n%s" % (rc, out))
        rc, out = run("--root", acy, "--dot")
        check(rc == 0 and "red" not in out, "acyclic --dot (%d):\n%s" % (rc, out))

    if failures:
        for f in failures:
            print("selftest FAILED: " + f, file=sys.stderr)
        return 1
    print("selftest: ok")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(
        description="Fail on include cycles between the folders of src/.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", dest="print_",
                      help="edges with counts, then the layering when acyclic")
    mode.add_argument("--dot", action="store_true",
                      help="the folder graph in Graphviz dot")
    mode.add_argument("--selftest", action="store_true",
                      help="check the checker on a synthetic tree")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), help="tree to check (default: this repo)")
    args = ap.parse_args(argv)

    if args.selftest:
        return selftest()
    try:
        g = scan(args.root)
    except OSError as e:
        print("check-layers: %s" % e, file=sys.stderr)
        return 2
    comps = cycles(g)
    if args.dot:
        print_dot(g, comps, sys.stdout)
        report_cycles(g, comps, sys.stderr)
    elif args.print_:
        print_graph(g, comps, sys.stdout)
    elif comps:
        report_cycles(g, comps, sys.stdout)
    else:
        print("check-layers: %d folders, %d edges, no cycle"
              % (len(g.folders), len(g.edges)))
    return 1 if comps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
