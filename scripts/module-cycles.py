#!/usr/bin/env python3
"""Lists import cycles between the modules of each crate of the workspace.

A module is a file under src/ (`a/b.rs` and `a/b/mod.rs` are `a::b`). An
edge A -> B is a `crate::B...` (or `super::...`, resolved) path in A's
non-test code naming B or something inside it, where B is not A itself,
one of A's ancestors (a parent's `mod` lines and re-exports are not
imports), nor one of A's descendants. Checks the graph of modules and the
same graph folded into top-level modules (`backend`, `run`, ...). Prints
each cycle found; exits 1 if there is one.
"""
import os, re, sys

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] == 'mod':
                rel = rel[:-1]
            if rel in (['lib'], ['main']):
                rel = []
            mods[tuple(rel)] = os.path.join(root, f)
    return mods

def code_of(path):
    text = open(path).read()
    # Drop test modules and comments.
    text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
    return re.sub(r'//[^\n]*', '', text)

def longest_module(mods, parts):
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return None

def edges(mods):
    out = {m: set() for m in mods}
    for m, path in mods.items():
        code = code_of(path)
        for hit in re.finditer(r'\b(crate|super)((?:::\w+)+)', code):
            parts = hit.group(2).split('::')[1:]
            if hit.group(1) == 'super':
                base = list(m[:-1])
                while parts and parts[0] == 'super':
                    base = base[:-1]; parts = parts[1:]
                parts = base + parts
            t = longest_module(mods, parts)
            if t is None or t == m or m[:len(t)] == t or t[:len(m)] == m:
                continue
            out[m].add(t)
    return out

def cycles(g):
    found, index, low, stack, on, n = [], {}, {}, [], set(), [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)
    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return found

root = os.path.join(os.path.dirname(__file__), '..')
bad = 0
for crate in sorted(os.listdir(root)):
    src = os.path.join(root, crate, 'src')
    if not os.path.isfile(os.path.join(root, crate, 'Cargo.toml')) or not os.path.isdir(src):
        continue
    g = edges(modules(src))
    # The same graph with every module folded into its top-level one.
    top = {}
    for a, bs in g.items():
        top.setdefault(a[:1], set())
        for b in bs:
            if a[:1] != b[:1] and a[:1] and b[:1]:
                top[a[:1]].add(b[:1])
                top.setdefault(b[:1], set())
    for level, graph in (("module", g), ("top-level module", top)):
        for comp in cycles(graph):
            bad = 1
            names = ", ".join('::'.join(c) or 'crate' for c in sorted(comp))
            print(f"{crate}: {level} cycle among {names}")
print("module-cycles: " + ("cycles found" if bad else "no cycle in any crate"))
sys.exit(bad)
