#!/usr/bin/env python3
"""Fails the build when an #include runs the wrong way through the layers.

tools/layers.txt is the module DAG: each unit (a folder under src/ with its
headers under include/sluice/<unit>/, or a named set of files) and the units
it includes directly. A file of unit U may include a header of U itself or
of any unit below U (reachable through the declared edges); anything else
is a wrong-way include, and this script exits 1 naming the file and line.

It also checks the DAG itself and its agreement with the code and meson:
  - the DAG has no cycle, names no unknown unit, and every folder under src/
    is in it (a new module must be placed before it builds);
  - every declared edge is used by at least one include (so the diagram in
    docs/ARCHITECTURE.md, drawn from this file, shows only real edges);
  - a unit marked pure (no I/O) depends only on pure units;
  - `#include "sluice/<m>/x.h"` names a file that exists under include/
    (a header moved beside its sources is private: reach it and fail);
  - a quoted include with '..' in it (reaching into another folder's private
    headers) is refused;
  - each library in src/*/meson.build that is a unit lists, among its
    dependencies, only units below it (`<unit>_dep`);
  - the diagram in docs/ARCHITECTURE.md (between the markers
    `<!-- check_layers: begin -->` and `<!-- check_layers: end -->`) shows
    exactly these units, edges and pure marks, and every arrow points to a
    lower layer number.

Run by `ninja` (the check_layers target, built by default, so a wrong-way
include fails the build) and by `meson test --suite lint`, or by hand:

    tools/check_layers.py [--root DIR] [--layers FILE] [--stamp FILE]
                          [--print-used] [--private-candidates]

--print-used prints the unit-to-unit edges the includes actually use.
--private-candidates prints the public headers that only their own module
(and its tests) include, directly or through its public headers: they
belong beside their sources in src/<module>/.

Layers file lines (blank lines and '#' comments ignored):
    unit: dep dep ...         the unit and the units it includes directly
    pure unit unit ...        units with no I/O (may depend on pure only)
    files unit: path path     files owned by a unit other than their folder's
                              (paths relative to the root; a trailing '*'
                              matches any suffix)
"""

import argparse
import os
import re
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_SUFFIXES = ('.h', '.cc')


class Layers:
    def __init__(self):
        self.deps = {}      # unit -> [direct deps], in file order
        self.line = {}      # unit -> line number in the layers file
        self.pure = set()
        self.files = []     # (pattern, unit)
        self.errors = []


def parse_layers(path):
    layers = Layers()
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            text = raw.split('#', 1)[0].strip()
            if not text:
                continue
            where = f'{path}:{number}'
            if text.startswith('pure '):
                layers.pure.update(text.split()[1:])
            elif text.startswith('files '):
                unit, _, paths = text[len('files '):].partition(':')
                for pattern in paths.split():
                    layers.files.append((pattern, unit.strip()))
            elif ':' in text:
                unit, _, deps = text.partition(':')
                unit = unit.strip()
                if unit in layers.deps:
                    layers.errors.append(f'{where}: unit {unit} declared twice')
                layers.deps[unit] = deps.split()
                layers.line[unit] = number
            else:
                layers.errors.append(f'{where}: cannot read "{text}"')
    return layers


def check_dag(layers, layers_path):
    errors = []
    for unit, deps in layers.deps.items():
        for dep in deps:
            if dep not in layers.deps:
                errors.append(f'{layers_path}:{layers.line[unit]}: {unit} depends on '
                              f'unknown unit {dep}')
        if unit in layers.pure:
            for dep in deps:
                if dep in layers.deps and dep not in layers.pure:
                    errors.append(f'{layers_path}:{layers.line[unit]}: {unit} is pure '
                                  f'but depends on {dep}, which is not')
    for unit in sorted(layers.pure - set(layers.deps)):
        errors.append(f'{layers_path}: pure names unknown unit {unit}')
    for _, unit in layers.files:
        if unit not in layers.deps:
            errors.append(f'{layers_path}: files names unknown unit {unit}')
    # Cycles: depth-first search with colours.
    state = {}

    def visit(unit, stack):
        state[unit] = 'open'
        for dep in layers.deps.get(unit, []):
            if state.get(dep) == 'open':
                cycle = stack[stack.index(dep):] + [dep]
                errors.append(f'{layers_path}: cycle: {" -> ".join(cycle)}')
            elif dep in layers.deps and dep not in state:
                visit(dep, stack + [dep])
        state[unit] = 'done'

    for unit in layers.deps:
        if unit not in state:
            visit(unit, [unit])
    return errors


def closure(layers):
    below = {}

    def reach(unit, seen):
        if unit in below:
            return below[unit]
        if unit in seen:  # a cycle, reported elsewhere
            return set()
        result = set()
        for dep in layers.deps.get(unit, []):
            if dep in layers.deps:
                result.add(dep)
                result |= reach(dep, seen | {unit})
        below[unit] = result
        return result

    for unit in layers.deps:
        reach(unit, set())
    return below


def unit_of(rel, layers):
    """The unit that owns a file (path relative to the root), or None."""
    for pattern, unit in layers.files:
        if pattern.endswith('*'):
            if rel.startswith(pattern[:-1]):
                return unit
        elif rel == pattern:
            return unit
    parts = rel.split('/')
    if parts[0] == 'src' and len(parts) > 2:
        return parts[1]
    if parts[0] == 'include' and len(parts) > 3 and parts[1] == 'sluice':
        return parts[2]
    return None


def checked_files(root):
    for top in ('src', os.path.join('include', 'sluice')):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def check_includes(root, layers, below):
    errors = []
    used = {}  # (unit, dep) -> first 'file:line' that uses it
    for rel in checked_files(root):
        unit = unit_of(rel, layers)
        if unit not in layers.deps:
            errors.append(f'{rel}: unit {unit} is not in the layers file')
            continue
        with open(os.path.join(root, rel), errors='replace') as f:
            lines = f.readlines()
        for number, line in enumerate(lines, 1):
            match = INCLUDE_RE.match(line)
            if not match:
                continue
            name = match.group(1)
            where = f'{rel}:{number}'
            if '..' in name.split('/'):
                errors.append(f'{where}: "{name}" reaches outside its folder; include a '
                              'public header as "sluice/<module>/<name>.h"')
                continue
            if name.startswith('sluice/'):
                target = os.path.join('include', name)
                if not os.path.isfile(os.path.join(root, target)):
                    errors.append(f'{where}: "{name}" is not a public header (no {target}); '
                                  'a private header is reached only from its own folder')
                    continue
            else:
                target = os.path.join(os.path.dirname(rel), name)
                if not os.path.isfile(os.path.join(root, target)):
                    continue  # a third-party header (absl/..., toml++/...)
            dep = unit_of(target, layers)
            if dep == unit or dep is None:
                continue
            used.setdefault((unit, dep), where)
            if dep not in below.get(unit, set()):
                errors.append(f'{where}: wrong-way include: {unit} includes "{name}" of '
                              f'{dep}, which is not below {unit} in tools/layers.txt')
    return errors, used


DOC_BEGIN = '<!-- check_layers: begin -->'
DOC_END = '<!-- check_layers: end -->'
DOC_LINE_RE = re.compile(r'^\s*(\d+)\s+([\w ]+?)\s*(?:─▶\s*(.*))?$')


def check_doc(doc_path, layers):
    """The diagram's lines: `LAYER unit unit [pure] [─▶ dep dep]`."""
    if not os.path.isfile(doc_path):
        return []
    with open(doc_path) as f:
        text = f.read()
    if DOC_BEGIN not in text or DOC_END not in text:
        return [f'{doc_path}: no layers diagram ({DOC_BEGIN} ... {DOC_END})']
    start = text.index(DOC_BEGIN)
    first_line = text.count('\n', 0, start) + 1
    block = text[start:text.index(DOC_END)].split('\n')[1:]
    errors, drawn, layer, pure = [], {}, {}, set()
    for offset, line in enumerate(block):
        match = DOC_LINE_RE.match(line)
        if not match:
            continue
        names = match.group(2).split()
        deps = (match.group(3) or '').split()
        for name in names:
            if name == 'pure':
                continue
            if name in drawn:
                errors.append(f'{doc_path}:{first_line + offset}: {name} drawn twice')
            drawn[name] = deps
            layer[name] = int(match.group(1))
            if 'pure' in names:
                pure.add(name)
    where = f'{doc_path} (layers diagram)'
    for unit in sorted(set(layers.deps) | set(drawn)):
        if unit not in drawn:
            errors.append(f'{where}: unit {unit} is not drawn')
        elif unit not in layers.deps:
            errors.append(f'{where}: {unit} is drawn but not in the layers file')
        elif sorted(drawn[unit]) != sorted(layers.deps[unit]):
            errors.append(f'{where}: {unit} is drawn ─▶ {" ".join(sorted(drawn[unit]))} '
                          f'but the layers file says {" ".join(sorted(layers.deps[unit]))}')
        if unit in drawn and (unit in pure) != (unit in layers.pure):
            errors.append(f'{where}: {unit}: pure mark differs from the layers file')
        for dep in drawn.get(unit, []):
            if dep in layer and layer[dep] >= layer[unit]:
                errors.append(f'{where}: {unit} (layer {layer[unit]}) ─▶ {dep} '
                              f'(layer {layer[dep]}) does not point down')
    return errors


LIBRARY_RE = re.compile(r"static_library\(\s*'sluice_(\w+)'")
DEP_RE = re.compile(r'\b(\w+)_dep\b')


def check_meson(root, layers, below):
    errors = []
    src = os.path.join(root, 'src')
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder, 'meson.build')
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            text = f.read()
        starts = [m for m in LIBRARY_RE.finditer(text)]
        for index, match in enumerate(starts):
            unit = match.group(1)
            if unit not in layers.deps:
                continue
            end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
            for dep in sorted(set(DEP_RE.findall(text[match.end():end]))):
                if dep in layers.deps and dep != unit and dep not in below[unit]:
                    rel = os.path.relpath(path, root)
                    errors.append(f'{rel}: library sluice_{unit} depends on {dep}_dep, '
                                  f'which is not below {unit} in tools/layers.txt')
    return errors


def check(root, layers_path):
    """Returns (errors, used edges)."""
    layers = parse_layers(layers_path)
    errors = list(layers.errors) + check_dag(layers, layers_path)
    src = os.path.join(root, 'src')
    for folder in sorted(os.listdir(src)):
        if os.path.isdir(os.path.join(src, folder)) and folder not in layers.deps:
            errors.append(f'src/{folder}: not in {layers_path}; place the module in the DAG')
    below = closure(layers)
    include_errors, used = check_includes(root, layers, below)
    errors += include_errors
    errors += check_meson(root, layers, below)
    errors += check_doc(os.path.join(root, 'docs', 'ARCHITECTURE.md'), layers)
    for unit, deps in layers.deps.items():
        for dep in deps:
            if dep in layers.deps and (unit, dep) not in used:
                errors.append(f'{layers_path}:{layers.line[unit]}: {unit} declares {dep} '
                              'but no file of it includes a header of it; drop the edge')
    return errors, used


def private_candidates(root):
    """Headers under include/sluice/ that nothing outside their folder needs."""
    includers = {}  # header (relative path) -> set of including files
    for top in ('src', 'include', 'tests', 'fuzz', 'bench', 'tools'):
        for dirpath, _, filenames in os.walk(os.path.join(root, top)):
            for name in filenames:
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                with open(os.path.join(root, rel), errors='replace') as f:
                    for line in f:
                        match = INCLUDE_RE.match(line)
                        if match and match.group(1).startswith('sluice/'):
                            header = os.path.join('include', match.group(1))
                            includers.setdefault(header, set()).add(rel)
    public = set()
    changed = True
    while changed:  # a header is public if something outside needs it
        changed = False
        for header, files in includers.items():
            if header in public:
                continue
            folder = header.split('/')[2]
            own = (f'src/{folder}/', f'tests/{folder}/', f'include/sluice/{folder}/')
            if any(not f.startswith(own) or f in public for f in files):
                public.add(header)
                changed = True
    return sorted(h for h in checked_files(root)
                  if h.startswith('include/') and h not in public)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default=os.path.join(os.path.dirname(__file__), '..'))
    parser.add_argument('--layers', help='default: ROOT/tools/layers.txt')
    parser.add_argument('--stamp', help='file to touch when the check passes')
    parser.add_argument('--print-used', action='store_true')
    parser.add_argument('--private-candidates', action='store_true')
    args = parser.parse_args(argv)
    layers_path = args.layers or os.path.join(args.root, 'tools', 'layers.txt')
    if args.stamp and os.path.exists(args.stamp):
        os.remove(args.stamp)
    errors, used = check(args.root, layers_path)
    if args.private_candidates:
        for header in private_candidates(args.root):
            print(header)
    if args.print_used:
        edges = {}
        for unit, dep in used:
            edges.setdefault(unit, set()).add(dep)
        for unit in sorted(edges):
            print(f'{unit}: {" ".join(sorted(edges[unit]))}')
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f'check_layers: {len(errors)} problem(s); the layers are in {layers_path}',
              file=sys.stderr)
        return 1
    if args.stamp:
        with open(args.stamp, 'w') as f:
            f.write('ok\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
