"""Reading a Rust crate's files for scripts/layers.py: tokens without comments, the module
tree from `mod` declarations (`x.rs`, `x/mod.rs`, `x.rs` beside `x/`, `#[path]`, inline
modules), what each module defines and binds with `use`, and where a path resolves. Test code
(`#[cfg(test)]` items, `mod tests`, files named `tests.rs` or `*_tests.rs`) is set apart.
Python 3.11 standard library.
"""

import re
from collections import deque

ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}
ITEM_STARTS = ITEM_KEYWORDS | {"impl", "mod", "use", "extern", "unsafe", "async",
                               "macro_rules", "pub"}
KEYWORDS = ITEM_KEYWORDS | {"impl", "mod", "use", "mut", "unsafe", "async", "extern", "pub",
                            "let", "where", "for", "in", "as", "dyn", "ref", "move", "_"}
SERDE_PATH_KEYS = {"with": ["serialize"], "serialize_with": [], "deserialize_with": [],
                   "default": []}

# ---------------------------------------------------------------------------- tokens

TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<lc>//[^\n]*) | (?P<bc>/\*)
  | (?P<raw>[bc]?r(?P<h>\#*)")
  | (?P<str>[bc]?")
  | (?P<chr>b?'(?:\\(?:u\{[0-9a-fA-F_]*\}|x..|.)|[^\\'\n])')
  | (?P<lt>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<id>(?:r\#)?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9][0-9A-Za-z_]*(?:\.[0-9][0-9A-Za-z_]*)?)
  | (?P<p>::|=>|->|.)""", re.X | re.S)


def lex(src):
    """Tokens of Rust source as (kind, text, line): comments dropped, literals kept whole."""
    toks, i, line = [], 0, 1
    while i < len(src):
        m = TOKEN.match(src, i)
        kind, j = m.lastgroup if m.lastgroup != "h" else "raw", m.end()
        if kind == "bc":
            depth = 1
            while j < len(src) and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
        elif kind == "raw":
            end = src.find('"' + m.group("h"), j)
            j = len(src) if end < 0 else end + 1 + len(m.group("h"))
        elif kind == "str":
            while j < len(src) and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
        if kind in ("raw", "str", "chr"):
            toks.append(("lit", src[i:j], line))
        elif kind in ("id", "num", "p", "lt"):
            text = m.group()
            toks.append((kind, text[2:] if text.startswith("r#") else text, line))
        line += src.count("\n", i, j)
        i = j
    return toks


def split_top(text):
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    return parts + [cur]


def is_test_attr(body):
    if body in ("test", "cfg(test)", "cfg(doctest)") or body.startswith(("tokio::test", "test(")):
        return True
    m = re.fullmatch(r"cfg\(all\((.*)\)\)", body)
    return bool(m) and "test" in split_top(m.group(1))


def closing(toks, i):
    """Index of the bracket closing the one at i."""
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j][1]
        if toks[j][0] == "p" and t in "([{":
            depth += 1
        elif toks[j][0] == "p" and t in ")]}":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def skip_vis(toks, i):
    if i < len(toks) and toks[i][1] == "pub":
        i += 1
        if i < len(toks) and toks[i][1] == "(":
            i = closing(toks, i) + 1
    return i


def item_end(toks, i):
    """Index just past the item (or field, statement, arm) starting at i."""
    k = skip_vis(toks, i)
    is_item = k < len(toks) and toks[k][1] in ITEM_STARTS
    depth = 0
    for j in range(i, len(toks)):
        kind, t, _ = toks[j]
        if kind != "p":
            continue
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth < 0:
                return j
            if depth == 0 and t == "}":
                return j + 1
        elif depth == 0 and (t == ";" or (t == "," and not is_item)):
            return j + 1
    return len(toks)


def path_at(toks, i):
    """The path (segments, next index) starting at token i, or None if none starts there."""
    kind, t, _ = toks[i]
    prev = toks[i - 1][1] if i else ""
    if kind != "id" or prev in ("::", ".") or i + 1 >= len(toks) or toks[i + 1][1] != "::":
        return None
    segs = ["$crate" if t == "crate" and prev == "$" else t]
    j = i + 1
    while j + 1 < len(toks) and toks[j][1] == "::" and toks[j + 1][0] == "id":
        segs.append(toks[j + 1][1])
        j += 2
    return segs, j


class Parsed:
    """What one file declares, defines and refers to; `chain` is the inline module nesting."""

    def __init__(self):
        self.test_file = False
        self.decls = []      # (chain, name, path attribute or None, test only)
        self.inline = []     # chains of product inline modules
        self.defs = []       # (chain, name)
        self.uses = []       # (chain, segments, alias, glob, line, module level)
        self.paths = []      # (chain, segments, line)
        self.test_refs = []  # (first segment, line) in test-only code


def first_segments(toks):
    out = []
    for i, (kind, t, line) in enumerate(toks):
        if kind == "id" and (path_at(toks, i) or (i and toks[i - 1][1] in ("use", "crate"))):
            out.append((t, line))
    return out


def parse_use(toks, i, chain, out, line, level):
    """Parses the use tree starting at token i; returns the index past its `;`."""
    def tree(i, prefix):
        segs = list(prefix)
        if toks[i][1] == "::" and not segs:
            segs, i = ["::"], i + 1
        while i < len(toks):
            kind, t, _ = toks[i]
            if t == "{":
                i += 1
                while i < len(toks) and toks[i][1] != "}":
                    i = tree(i, segs)
                    if toks[i][1] == ",":
                        i += 1
                    elif toks[i][1] != "}":
                        return i
                return i + 1
            if t == "*":
                out.uses.append((chain, segs, None, True, line, level))
                return i + 1
            if kind != "id":
                return i
            segs.append(t)
            i += 1
            if i < len(toks) and toks[i][1] == "::":
                i += 1
                continue
            alias = None
            if i + 1 < len(toks) and toks[i][1] == "as":
                alias, i = toks[i + 1][1], i + 2
            if segs[-1] == "self":
                segs = segs[:-1]
            if segs:
                out.uses.append((chain, segs, alias, False, line, level))
            return i
        return i
    j = tree(i, [])
    while j < len(toks) and toks[j][1] != ";":
        j += 1
    return j + 1


def parse(src):
    toks, out = lex(src), Parsed()
    stack, depth, i = [], 0, 0   # stack: (inline module name, depth inside it)
    pending_test, pending_path = False, None
    while i < len(toks):
        kind, t, line = toks[i]
        chain = tuple(name for name, _ in stack)
        level = depth == (stack[-1][1] if stack else 0)
        if t == "#" and i + 1 < len(toks) and toks[i + 1][1] in ("[", "!"):
            inner = toks[i + 1][1] == "!"
            start = i + 2 if inner else i + 1
            end = closing(toks, start)
            body = "".join(x[1] for x in toks[start + 1:end])
            if is_test_attr(body):
                if inner and not stack:
                    out.test_file = True
                elif not inner:
                    pending_test = True
            m = re.fullmatch(r'path="(.*)"', body)
            if m:
                pending_path = m.group(1)
            if body.startswith("serde("):
                for key, value in re.findall(r'(\w+)="([\w:]+)"', body):
                    if key in SERDE_PATH_KEYS and "::" in value:
                        out.paths.append((chain, value.split("::") + SERDE_PATH_KEYS[key], line))
            i = end + 1
            continue
        k = skip_vis(toks, i)
        is_mod = k + 2 < len(toks) and toks[k][1] == "mod" and toks[k + 1][0] == "id"
        if pending_test:
            end = item_end(toks, i)
            if is_mod and toks[k + 2][1] == ";":
                out.decls.append((chain, toks[k + 1][1], pending_path, True))
            out.test_refs += first_segments(toks[i:end])
            i, pending_test, pending_path = end, False, None
            continue
        if is_mod and toks[k + 2][1] in (";", "{"):
            name = toks[k + 1][1]
            if toks[k + 2][1] == ";":
                out.decls.append((chain, name, pending_path, name == "tests"))
                i, pending_path = k + 3, None
            elif name == "tests":
                end = item_end(toks, i)
                out.test_refs += first_segments(toks[i:end])
                i = end
            else:
                depth += 1
                stack.append((name, depth))
                out.inline.append(chain + (name,))
                i, pending_path = k + 3, None
            continue
        if t == "pub" and k > i + 1:   # pub(crate), pub(in path): not a reference
            i = k
            continue
        if kind == "id" and t == "use":
            i = parse_use(toks, i + 1, chain, out, line, level)
            continue
        if kind == "id" and t == "extern" and i + 2 < len(toks) and toks[i + 1][1] == "crate":
            alias = toks[i + 4][1] if i + 4 < len(toks) and toks[i + 3][1] == "as" else None
            out.uses.append((chain, [toks[i + 2][1]], alias, False, line, level))
            i += 3
            continue
        if kind == "id" and t in ITEM_KEYWORDS and level and i + 1 < len(toks):
            nxt = toks[i + 1 + (toks[i + 1][1] == "mut")]
            if nxt[0] == "id" and nxt[1] not in KEYWORDS:
                out.defs.append((chain, nxt[1]))
        p = path_at(toks, i)
        if p:
            out.paths.append((chain, p[0], line))
            i = p[1]
            continue
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if stack and depth < stack[-1][1]:
                stack.pop()
        if t in (";", "{", "}"):
            pending_path = None
        i += 1
    return out


# ---------------------------------------------------------------------------- module trees


class Module:
    def __init__(self, file):
        self.file, self.children, self.bindings, self.globs, self.defs = file, set(), {}, [], set()


class Tree:
    """The module tree of one crate root: module path -> Module, file -> its module path."""

    def __init__(self, root_file, parsed_of, warn):
        self.mods, self.filemod, self.test_files, self.memo = {}, {}, [], {}
        queue = deque([(root_file, (), False)])
        while queue:
            file, modpath, test = queue.popleft()
            p = parsed_of(file)
            test = test or p.test_file or file.name == "tests.rs" or file.name.endswith("_tests.rs")
            if test:
                self.test_files.append(file)
            else:
                self.filemod[file] = modpath
                self.mods[modpath] = Module(file)
                for chain in p.inline:
                    self.mods[modpath + chain] = Module(file)
                    self.mods[modpath + chain[:-1]].children.add(chain[-1])
                for chain, name in p.defs:
                    self.mods[modpath + chain].defs.add(name)
                for chain, segs, alias, glob, _, _ in p.uses:
                    m = self.mods[modpath + chain]
                    if glob:
                        m.globs.append(segs)
                    elif (alias or segs[-1]) not in ("_", "::"):
                        m.bindings.setdefault(alias or segs[-1], segs)
            mod_rs = file.name in ("lib.rs", "main.rs", "mod.rs") or file == root_file
            base = file.parent if mod_rs else file.parent / file.stem
            for chain, name, attr, decl_test in p.decls:
                if attr:
                    cands = [(file.parent if not chain else base.joinpath(*chain)) / attr]
                else:
                    d = base.joinpath(*chain)
                    cands = [d / f"{name}.rs", d / name / "mod.rs"]
                child = next((f for f in cands if f.is_file()), None)
                if child is None:
                    warn(f"{file}: no file for `mod {name};`")
                    continue
                if not (test or decl_test):
                    self.mods[modpath + chain].children.add(name)
                queue.append((child, modpath + chain + (name,), test or decl_test))

    def absolutize(self, ctx, segs, hops=0, skip=None):
        """('local', absolute path) or ('ext', crate ident) or None. `skip`: the name a `use`
        binds, which its own path does not see."""
        first = segs[0]
        if first in ("crate", "$crate"):
            return "local", tuple(segs[1:])
        if first == "self":
            return "local", ctx + tuple(segs[1:])
        if first == "super":
            k = len(segs) - len(list(dropwhile_super(segs)))
            return ("local", ctx[:len(ctx) - k] + tuple(segs[k:])) if k <= len(ctx) else None
        if first == "::":
            return ("ext", segs[1]) if len(segs) > 1 else None
        m = self.mods.get(ctx)
        if m is None or hops > 24:
            return None
        if first in m.children or first in m.defs:
            return "local", ctx + tuple(segs)
        if first in m.bindings and first != skip:
            b = self.binding(ctx, first, hops)
            if b and b[0] == "local":
                return "local", b[1] + tuple(segs[1:])
            return b
        for g in m.globs:
            gm = self.module_of(self.absolutize(ctx, g, hops + 1), hops)
            if gm is not None and self.provides(gm, first):
                return "local", gm + tuple(segs)
        return "ext", first

    def binding(self, ctx, name, hops):
        key = (ctx, name)
        if key not in self.memo:
            self.memo[key] = None   # a loop of aliases resolves to nothing
            self.memo[key] = self.absolutize(ctx, self.mods[ctx].bindings[name], hops + 1, name)
        return self.memo[key]

    def provides(self, modpath, name):
        m = self.mods[modpath]
        return name in m.children or name in m.bindings or name in m.defs

    def module_of(self, absolute, hops=0):
        if not absolute or absolute[0] != "local":
            return None
        t = self.resolve(absolute[1], hops)
        return t[1] if t and t[0] != "ext" and t[2] is None else None

    def resolve(self, path, hops=0):
        """(file, module path, item or None, defined there) for an absolute path, following
        re-exports to the file that defines the item; ('ext', crate) for another crate's."""
        m = ()
        for i, n in enumerate(path):
            mod = self.mods.get(m)
            if mod is None or hops > 24:
                return None
            if n in mod.children:
                m += (n,)
                continue
            if n in mod.bindings:
                b = self.binding(m, n, hops)
                if b and b[0] == "local":
                    return self.resolve(b[1] + tuple(path[i + 1:]), hops + 1)
                return b
            if n in mod.defs:
                return mod.file, m, n, True
            for g in mod.globs:
                gm = self.module_of(self.absolutize(m, g, hops + 1), hops + 1)
                if gm is not None and gm != m and self.provides(gm, n):
                    return self.resolve(gm + tuple(path[i:]), hops + 1)
            return mod.file, m, n, False
        return (self.mods[m].file, m, None, False) if m in self.mods else None

    def locate(self, path):
        """(file, module path, item or None, defined there): the deepest module file on the
        path, without following re-exports; ('ext', crate) through a re-exported crate."""
        m = ()
        for n in path:
            mod = self.mods.get(m)
            if mod is None:
                return None
            if n in mod.bindings and n not in mod.children:
                b = self.binding(m, n, 0)
                if b and b[0] == "ext":
                    return b
            if n not in mod.children:
                return mod.file, m, n, n in mod.defs
            m += (n,)
        return (self.mods[m].file, m, None, False) if m in self.mods else None

    def ancestor_files(self, file):
        mp = self.filemod[file]
        return {self.mods[mp[:k]].file for k in range(len(mp)) if mp[:k] in self.mods} - {file}


def dropwhile_super(segs):
    i = 0
    while i < len(segs) and segs[i] == "super":
        i += 1
    return segs[i:]
