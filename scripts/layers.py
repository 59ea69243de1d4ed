#!/usr/bin/env python3
"""Checks the workspace's structure from its own code and manifests.

- No import loop between the files of a crate's product code (its `src/`, test code left
  out). An edge A -> B means file A refers to an item in module file B: `use` lines and paths
  anywhere in code (`crate::`, `super::`, `self::`, child modules, `use` aliases), each
  resolved to the deepest module file on the path; `mod x;` declares, it is not an edge. Each
  strongly connected set of files is reported with its shortest loop and the references
  between its top-level modules.
- No file imports an item defined (not re-exported) in the module file of one of its
  ancestors (`lib.rs`, `main.rs`, `mod.rs`, or `x.rs` beside `x/`): those files only declare
  and re-export. `--allow-parent-imports` reports them without failing, and leaves their
  edges out of the loops.
- The crate layers in LAYERS below: a crate depends only on crates in lower layers, in its
  Cargo.toml ([dependencies], [build-dependencies], [dev-dependencies]) and in its code
  (every `ipfsbench_x::` a file names is declared and allowed).

Usage: python3 scripts/layers.py [--root DIR] [--allow-parent-imports] [--verbose]
                                 [--follow-reexports]
       python3 scripts/layers.py --self-test
Exit status: 0 clean, 1 a finding, 2 a usage or manifest error. Reading Rust is in
layers_rust.py beside this file. Python 3.11 standard library.
"""

import argparse
import sys
import tempfile
import tomllib
from collections import deque
from pathlib import Path

from layers_rust import Tree, first_segments, lex, parse

# Crate directories (relative to the workspace root), lowest layer first. A crate may depend
# only on crates of lower layers; crates of one layer never depend on each other unless the
# pair is in SAME_LEVEL_ALLOWED. A directory not yet in the workspace is simply absent.
LAYERS = [
    ["protocols", "sql", "runtime"],
    ["node/store", "node/bitswap"],
    ["node/net"],
    ["node/data", "node/http"],
    ["node"],
    ["roles"],
    ["cli"],
]
# Crates outside the layers: they may depend on anything, and a layered crate may name them
# only as dev-dependencies (test support).
OUTSIDE = ["integration-tests"]
# (from, to) pairs of one layer allowed to depend: none.
SAME_LEVEL_ALLOWED: list[tuple[str, str]] = []

DEP_TABLES = ("dependencies", "build-dependencies", "dev-dependencies")


# ---------------------------------------------------------------------------- workspace


class Crate:
    def __init__(self, root, rel, manifest):
        self.dir, self.rel, self.manifest = root / rel, rel, manifest
        pkg = manifest.get("package", {})
        self.name = pkg.get("name", rel)
        self.ident = manifest.get("lib", {}).get("name", self.name).replace("-", "_")
        self.deps = {t: {} for t in DEP_TABLES}   # table -> {ident in code: crate dir}


def load_workspace(root):
    top = tomllib.loads((root / "Cargo.toml").read_text())
    ws = top.get("workspace", {})
    excluded = {(root / e).resolve() for e in ws.get("exclude", [])}
    dirs = []
    for pattern in ws.get("members", []) + (["."] if "package" in top else []):
        is_glob = any(c in pattern for c in "*?[")
        for d in sorted(root.glob(pattern)) if is_glob else [root / pattern]:
            d = d.resolve()
            if (d / "Cargo.toml").is_file() and d not in excluded and d not in dirs:
                dirs.append(d)
    crates = {}
    for d in dirs:
        rel = d.relative_to(root.resolve()).as_posix()
        crates[rel] = Crate(root, rel, tomllib.loads((d / "Cargo.toml").read_text()))
    by_path = {c.dir.resolve(): c.rel for c in crates.values()}
    shared = ws.get("dependencies", {})
    for c in crates.values():
        tables = [c.manifest] + list(c.manifest.get("target", {}).values())
        for table in DEP_TABLES:
            for deps in (t.get(table, {}) for t in tables):
                for key, spec in deps.items():
                    if not isinstance(spec, dict):
                        continue
                    path = c.dir / spec["path"] if "path" in spec else None
                    if spec.get("workspace") and isinstance(shared.get(key), dict):
                        path = root / shared[key]["path"] if "path" in shared[key] else None
                    if path is not None and path.resolve() in by_path:
                        c.deps[table][key.replace("-", "_")] = by_path[path.resolve()]
    return crates


def crate_roots(c):
    roots = []
    lib = c.dir / c.manifest.get("lib", {}).get("path", "src/lib.rs")
    if lib.is_file():
        roots.append(lib)
    bins = [c.dir / b["path"] for b in c.manifest.get("bin", []) if "path" in b]
    bins += [c.dir / "src/main.rs"] + sorted((c.dir / "src/bin").glob("*.rs"))
    bins += sorted((c.dir / "src/bin").glob("*/main.rs"))
    return roots + [b for b in dict.fromkeys(bins) if b.is_file() and b not in roots]


# ---------------------------------------------------------------------------- checks


class Report:
    def __init__(self):
        self.crates, self.files, self.edges = [], 0, 0
        self.cycles = []    # (crate, SCC files, shortest loop, hops, inner edges, module edges)
        self.parents = []   # (crate, file, ancestor file, [(item, line)], closes a loop)
        self.layers = []    # (kind, subject, text) of each layer or manifest violation
        self.notes, self.warnings = [], []

    def failures(self, allow_parent_imports):
        parents = 0 if allow_parent_imports else len(self.parents)
        return len(self.cycles) + len(self.layers) + parents


def layer_index(layers):
    return {d: n for n, level in enumerate(layers) for d in level}


def may_depend(a, b, table, layers, outside, same_level):
    index = layer_index(layers)
    if a in outside:
        return True
    if b in outside:
        return table == "dev-dependencies"
    if a not in index or b not in index:
        return True   # reported once as "has no layer"
    return index[b] < index[a] or (index[b] == index[a] and (a, b) in same_level)


def strongly_connected(nodes, adj):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(adj.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def shortest_cycle(comp, adj):
    members, best = set(comp), None
    for s in comp:
        prev, queue, last = {s: None}, deque([s]), None
        while queue and last is None:
            u = queue.popleft()
            for v in sorted(adj.get(u, ())):
                if v == s:
                    last = u
                    break
                if v in members and v not in prev:
                    prev[v] = u
                    queue.append(v)
        if last is not None:
            loop = []
            while last is not None:
                loop.append(last)
                last = prev[last]
            loop.reverse()
            if best is None or len(loop) < len(best):
                best = loop
    return best


def read(file):
    return file.read_text(errors="replace")


def reaches(adj, a, b):
    seen, queue = {a}, deque([a])
    while queue:
        for v in adj.get(queue.popleft(), ()):
            if v == b:
                return True
            if v not in seen:
                seen.add(v)
                queue.append(v)
    return False


def scan_tree(tree, parsed_of, graph, follow):
    """Adds the product files of one module tree to `graph`: edges, parent imports, crate refs."""
    for f in tree.test_files:
        graph["refs"] += [(i, f, ln, True) for i, ln in first_segments(lex(read(f)))]
    for f, fmod in tree.filemod.items():
        graph["files"][f] = fmod[0] if fmod else "(root)"
        p = parsed_of(f)
        graph["refs"] += [(i, f, ln, True) for i, ln in p.test_refs]
        ancestors = tree.ancestor_files(f)
        items = [(ch, s, g, ln, None if g else alias or s[-1])
                 for ch, s, alias, g, ln, _ in p.uses]
        items += [(ch, s, False, ln, None) for ch, s, ln in p.paths]
        for chain, segs, glob, line, binds in items:
            a = tree.absolutize(fmod + chain, segs, skip=binds)
            if a and a[0] == "ext":
                graph["refs"].append((a[1], f, line, False))
                continue
            text = "::".join(segs) + ("::*" if glob else "")
            if glob:
                gm = tree.module_of(a)
                if gm is None:
                    continue
                target, item, defined = tree.mods[gm].file, "*", bool(tree.mods[gm].defs)
            else:
                t = (tree.resolve(a[1]) if follow else tree.locate(a[1])) if a else None
                if t and t[0] == "ext":   # another crate, through a re-export of it
                    graph["refs"].append((t[1], f, line, False))
                    continue
                if t is None or t[2] is None:
                    continue
                target, _, item, defined = t
            if target == f:
                continue
            graph["edges"].setdefault((f, target), (line, text))
            if defined and target in ancestors:
                graph["parents"].setdefault((f, target), {}).setdefault(item, line)
            else:
                graph["core"].setdefault((f, target), (line, text))


def check_refs(c, graph, known, rel, rules, rep):
    """Each workspace crate the code names is declared and allowed by the layers."""
    seen, used = {}, set()
    for ident, f, line, test in graph["refs"]:
        dep = known.get(ident)
        if dep is not None and dep != c.rel:
            used.add(dep)
            seen.setdefault((rel(f), ident, test), []).append(line)
    for (f, ident, test), lines in sorted(seen.items()):
        dep = known[ident]
        tables = ("dependencies", "dev-dependencies") if test else ("dependencies",)
        where = (f"{f}:{lines[0]} names {ident}" + (f" ({len(lines)} places)" if len(lines) > 1
                 else "") + (" in test code" if test else ""))
        if not any(dep in c.deps[t].values() for t in tables):
            rep.layers.append(("undeclared", f"{f} {ident}", f"{where}, but {c.rel}/Cargo.toml "
                               f"does not declare {dep} in [{'] or ['.join(tables)}]"))
        elif not may_depend(c.rel, dep, tables[-1], *rules):
            rep.layers.append(("code", f"{f} {ident}", f"{where}: {dep} is not below {c.rel}"))
    for table in ("dependencies", "dev-dependencies"):
        for dep in sorted(set(c.deps[table].values()) - used):
            rep.notes.append(f"{c.rel}/Cargo.toml: [{table}] names {dep}, which no code of "
                             f"{c.rel} refers to")


def find_cycles(c, graph, rel, rep, allow_parent_imports):
    """Loops of the import graph (without parent imports when they are allowed)."""
    core = graph["core"] if allow_parent_imports else graph["edges"]
    groups, found = graph["files"], 0
    adj = {}
    for a, b in core:
        adj.setdefault(a, set()).add(b)
    for comp in strongly_connected(groups, adj):
        if len(comp) < 2:
            continue
        loop = shortest_cycle(comp, adj)
        hops = [(rel(x), *core[(x, loop[(n + 1) % len(loop)])]) for n, x in enumerate(loop)]
        inner = sorted((rel(a), rel(b), *e) for (a, b), e in core.items()
                       if a in comp and b in comp)
        between = {}
        for (a, b), (line, text) in sorted(core.items()):
            if a in comp and b in comp and groups[a] != groups[b]:
                between.setdefault((groups[a], groups[b]), []).append((rel(a), line, text))
        rep.cycles.append((c.rel, [rel(x) for x in comp], [rel(x) for x in loop], hops, inner,
                           sorted(between.items())))
        found += 1
    return found


def check(root, allow_parent_imports=False, follow=False, layers=LAYERS, outside=OUTSIDE,
          same_level=SAME_LEVEL_ALLOWED):
    root = Path(root).resolve()
    rep, crates = Report(), load_workspace(root)
    index, rules = layer_index(layers), (layers, set(outside), same_level)
    rel = lambda f: Path(f).resolve().relative_to(root).as_posix()
    cache = {}

    def parsed_of(file):
        if file not in cache:
            cache[file] = parse(read(file))
        return cache[file]

    idents = {c.ident: c.rel for c in crates.values()
              if (c.dir / c.manifest.get("lib", {}).get("path", "src/lib.rs")).is_file()}
    for c in crates.values():
        if c.rel not in index and c.rel not in outside:
            rep.layers.append(("no layer", c.rel, f"crate {c.rel} ({c.name}) has no layer"))
        for table in DEP_TABLES:
            for dep in sorted(set(c.deps[table].values())):
                if not may_depend(c.rel, dep, table, *rules):
                    rep.layers.append(("manifest", f"{c.rel}/Cargo.toml",
                                       f"{c.rel}/Cargo.toml: [{table}] names {dep} "
                                       f"({crates[dep].name}), which is not below {c.rel}"))
    for c in sorted(crates.values(), key=lambda c: c.rel):
        known = dict(idents)
        for table in DEP_TABLES:
            known.update(c.deps[table])
        graph = {"files": {}, "edges": {}, "core": {}, "parents": {}, "refs": []}
        for d in ("tests", "benches", "examples"):
            for f in sorted((c.dir / d).rglob("*.rs")):
                graph["refs"] += [(i, f, ln, True)
                                  for i, ln in first_segments(lex(read(f)))]
        for root_file in crate_roots(c):
            scan_tree(Tree(root_file, parsed_of, rep.warnings.append), parsed_of, graph, follow)
        check_refs(c, graph, known, rel, rules, rep)
        cycles = find_cycles(c, graph, rel, rep, allow_parent_imports)
        adj = {}
        for a, b in graph["edges"]:
            adj.setdefault(a, set()).add(b)
        parents = 0
        for (f, target), items in sorted(graph["parents"].items()):
            first_use = sorted(items.items(), key=lambda x: x[1])
            rep.parents.append((c.rel, rel(f), rel(target), first_use, reaches(adj, target, f)))
            parents += len(items)
        rep.files += len(graph["files"])
        rep.edges += len(graph["edges"])
        rep.crates.append((c.rel, c.name, len(graph["files"]), len(graph["edges"]), cycles, parents,
                           {t: sorted(set(c.deps[t].values())) for t in DEP_TABLES}))
    return rep


def print_report(rep, allow_parent_imports, verbose, layers=LAYERS, outside=OUTSIDE):
    index = layer_index(layers)
    for rel_dir, name, nfiles, nedges, ncycles, nparents, deps in rep.crates:
        layer = f"layer {index[rel_dir]}" if rel_dir in index else (
            "outside the layers" if rel_dir in outside else "NO LAYER")
        dev = f"; dev: {', '.join(deps['dev-dependencies'])}" if deps["dev-dependencies"] else ""
        normal = ", ".join(deps["dependencies"]) or "-"
        print(f"{rel_dir} ({name}, {layer}): {nfiles} files, {nedges} edges, {ncycles} cycles, "
              f"{nparents} parent imports; depends on: {normal}{dev}")
    for w in rep.warnings:
        print(f"warning: {w}")
    for crate, comp, loop, hops, inner, between in rep.cycles:
        print(f"\nCYCLE in {crate}: {len(comp)} files in one loop; its shortest loop:")
        print("  " + " -> ".join(loop + loop[:1]))
        for f, line, text in hops:
            print(f"    {f}:{line}: {text}")
        if len(comp) > len(loop):
            print("  all files: " + ", ".join(comp))
        if between:
            print("  references between its top-level modules (module -> module: count, first):")
            for (ga, gb), refs in between:
                f, line, text = refs[0]
                print(f"    {ga} -> {gb}: {len(refs)}, {f}:{line}: {text}")
        if verbose:
            for a, b, line, text in inner:
                print(f"    {a}:{line} -> {b}: {text}")
    if rep.parents and (verbose or not allow_parent_imports):
        head = "allowed" if allow_parent_imports else "PARENT IMPORT"
        print(f"\n{head}: a file imports items defined in an ancestor's module file "
              "(line of first use; * = the ancestor reaches the file back: a loop):")
        for crate, f, target, items, loop in rep.parents:
            names = ", ".join(f"{item}:{line}" for item, line in items)
            print(f"  {'*' if loop else ' '} {f} <- {target}: {names}")
    for _, _, text in rep.layers:
        print(f"LAYER: {text}")
    for n in rep.notes:
        print(f"note: {n}")
    failures = rep.failures(allow_parent_imports)
    nparents = sum(len(p[3]) for p in rep.parents)
    print(f"\nlayers.py: {len(rep.crates)} crates, {rep.files} files, {rep.edges} edges, "
          f"{len(rep.cycles)} cycles, {nparents} parent imports in {len(rep.parents)} file pairs"
          f"{' (allowed)' if allow_parent_imports else ''}, {len(rep.layers)} layer violations: "
          f"{'FAILED' if failures else 'clean'}")
    return failures


# ---------------------------------------------------------------------------- self-test

SELF_TEST = {
    "Cargo.toml": '[workspace]\nmembers = ["protocols", "sql", "node", "node/*", "extra"]\n'
                  '[workspace.dependencies]\nipfsbench-protocols = { path = "protocols" }\n'
                  'ipfsbench-store = { path = "node/store" }\n',
    "protocols/Cargo.toml": '[package]\nname = "ipfsbench-protocols"\n',
    "protocols/src/lib.rs": "//! Clean: re-exports, x.rs beside x/, nested groups.\npub mod a;\n"
                            "pub mod b;\nmod c;\npub use a::Alpha;\n#[cfg(test)]\nmod b_tests;\n",
    "protocols/src/a.rs": "use crate::b::Beta;\npub struct Alpha(pub Beta);\n",
    "protocols/src/b.rs": "/* use crate::a::Alpha; /* nested */ */\n/// [`crate::a::Alpha`]\n"
                          "pub struct Beta; // crate::a::Alpha\n"
                          "const S: &str = \"crate::a::Alpha\";\n"
                          "const R: &str = r#\"crate::a::x\"#;\n"
                          "fn q<'a>(_: &'a str) -> char { '\"' }\n"
                          "#[cfg(test)]\nuse crate::a::Alpha as _;\n"
                          "#[cfg(test)]\nmod tests {\n    use crate::a::Alpha;\n}\n",
    "protocols/src/b_tests.rs": "use crate::a::Alpha;\nuse crate::b::Beta;\n",
    "protocols/src/c.rs": "mod d;\n",
    "protocols/src/c/d.rs": "use crate::{a::{self, Alpha}, b::{Beta}};\n"
                            "fn f(_: a::Alpha, _: Beta) {}\n"
                            "fn g() -> crate::Alpha { super::super::a::Alpha(Beta) }\n",
    "sql/Cargo.toml": '[package]\nname = "ipfsbench-sql"\n[dependencies]\n'
                      'ipfsbench-store.workspace = true\n',
    "sql/src/lib.rs": "pub fn f() { ipfsbench_store::f() }\n",
    "node/Cargo.toml": '[package]\nname = "ipfsbench-core"\n[dependencies]\n'
                       'ipfsbench-net = { path = "net" }\n',
    "node/src/lib.rs": "pub use ipfsbench_net as net;\nmod user;\n",
    "node/src/user.rs": "fn f(_: crate::net::Thing) {}\n",
    "node/store/Cargo.toml": '[package]\nname = "ipfsbench-store"\n[dependencies]\n'
                             'ipfsbench-protocols.workspace = true\n',
    "node/store/src/lib.rs": "mod x;\nmod y;\npub fn f() { x::fx() }\n",
    "node/store/src/x.rs": "pub(crate) fn fx() { crate::y::fy(ipfsbench_protocols::Alpha) }\n",
    "node/store/src/y.rs": "use super::x::fx;\npub(crate) fn fy<T>(_: T) { let _ = fx; }\n",
    "node/store/tests/t.rs": "use ipfsbench_protocols::Alpha;\n",
    "node/net/Cargo.toml": '[package]\nname = "ipfsbench-net"\n[dependencies]\n'
                           'ipfsbench-store = { path = "../store" }\n',
    "node/net/src/lib.rs": "pub mod child;\npub struct Thing;\npub fn g() { child::f(Thing) }\n",
    "node/net/src/child.rs": "pub fn f(_: crate::Thing) { ipfsbench_store::f() }\n",
    "extra/Cargo.toml": '[package]\nname = "extra"\n',
    "extra/src/lib.rs": "",
}


def self_test():
    layers = [["protocols", "sql"], ["node/store"], ["node/net"], ["node"]]
    store_loop = ["node/store/src/x.rs", "node/store/src/y.rs"]
    want_layers = [("code", "sql/src/lib.rs ipfsbench_store"), ("manifest", "sql/Cargo.toml"),
                   ("no layer", "extra")]
    want = {  # allow_parent_imports -> findings
        False: {"cycles": [["node/net/src/child.rs", "node/net/src/lib.rs"], store_loop],
                "failures": 6},
        True: {"cycles": [store_loop], "failures": 4},
    }
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SELF_TEST.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        for allow, expected in want.items():
            rep = check(tmp, allow, layers=layers, outside=[])
            got = {
                "cycles": [c[2] for c in rep.cycles],
                "parents": [(f, target, items, loop) for _, f, target, items, loop in rep.parents],
                "layers": sorted((kind, subject) for kind, subject, _ in rep.layers),
                "files": rep.files,
                "edges": rep.edges,
                "warnings": rep.warnings,
                "failures": rep.failures(allow),
            }
            expected = dict(expected, layers=want_layers, files=14, edges=10, warnings=[], parents=[
                ("node/net/src/child.rs", "node/net/src/lib.rs", [("Thing", 1)], True)])
            for key in expected:
                if got[key] != expected[key]:
                    ok = False
                    print(f"self-test (allow parent imports: {allow}): {key}: got {got[key]!r}, "
                          f"want {expected[key]!r}")
    print(f"layers.py --self-test: {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=Path(__file__).resolve().parent.parent,
                    help="workspace root (default: this script's repository)")
    ap.add_argument("--allow-parent-imports", action="store_true",
                    help="report imports from an ancestor's module file without failing")
    ap.add_argument("--verbose", action="store_true",
                    help="list every edge inside each loop and every allowed parent import")
    ap.add_argument("--follow-reexports", action="store_true",
                    help="draw an edge to the file that defines a re-exported item instead of "
                         "the file the path names (a diagnostic: which loops are only facades)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the checker against small synthetic crates")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    try:
        rep = check(args.root, args.allow_parent_imports, args.follow_reexports)
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        print(f"layers.py: cannot read the workspace: {e}", file=sys.stderr)
        return 2
    return 1 if print_report(rep, args.allow_parent_imports, args.verbose) else 0


if __name__ == "__main__":
    sys.exit(main())
