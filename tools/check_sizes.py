#!/usr/bin/env python3
"""Reports C++ files under src/ over 700 lines and functions over 80 lines.

Issue 12 asks for modules a newcomer can hold in their head: no file in
src/ over FILE_LINES_MAX lines, no function over FUNCTION_LINES_MAX. This
script finds both, and fails (exit 1) on any that is not listed, with a
reason, in tools/check_sizes_allowlist.txt. Entries that no longer match a
violation are reported as stale (a warning, exit 0), so the list can shrink
as the code is split. Run by `meson test check_sizes`, or by hand:

    tools/check_sizes.py [--root DIR] [--allowlist FILE] [--all]

--all prints every violation, allowed or not.

How it counts. A file's size is its number of lines. A function's size is
the lines from the first line of its signature to its closing brace, both
included (comments and blank lines inside count: they are what a reader
scrolls through). Functions are found with a brace-matching heuristic, not
a C++ parser:
  - comments, string and character literals (raw strings too) and
    preprocessor lines are blanked first; a ' between digits is taken as a
    digit separator (30'000);
  - a '{' outside any function opens a function body when the text before it
    (since the last ';', '{' or '}') has a '(' and ends with ')' or with
    const/noexcept/override/final/mutable/&/&& or a trailing return type;
    it opens a namespace, extern "C" block or class body by keyword, and
    anything else (an initializer list, a table) is data: skipped, and kept
    as part of the text before the next '{' (a constructor's member
    initialised with braces, `: a_(x), b_{y} {`, still opens a function);
  - everything up to the matching '}' is that function, lambdas and local
    classes included.
Limits, known: a macro that expands to a function header or to braces, a
'{' or '}' hidden in a macro, or an unbalanced brace under #if/#else
branches confuses it; functions are named by the identifier before their
first '(' (operators and lambdas bound at namespace scope get a best-effort
name; overloads share a name, so an allowlist entry covers all of them).
Headers are checked like sources.

Allowlist lines (blank lines and '#' comments are ignored):
    file PATH -- reason
    function PATH NAME -- reason
PATH is relative to the root (src/...); NAME as this script prints it
(Class::Method for an out-of-class member, Method inside a class body).
"""

import argparse
import os
import re
import sys

FILE_LINES_MAX = 700
FUNCTION_LINES_MAX = 80
SOURCE_SUFFIXES = ('.cc', '.h', '.cpp', '.hpp')


def blank_code(text):
    """Returns text with comments, literals and preprocessor lines replaced
    by spaces (newlines kept, so offsets and line numbers are unchanged)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != '\n':
                out[k] = ' '

    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == '#':
            # A preprocessor line, with its backslash continuations.
            j = i
            while j < n:
                nl = text.find('\n', j)
                if nl < 0:
                    j = n
                    break
                if nl > 0 and text[nl - 1] == '\\':
                    j = nl + 1
                    continue
                j = nl
                break
            blank(i, j)
            i = j
            continue
        if c == '\n':
            at_line_start = True
            i += 1
            continue
        if c in ' \t':
            i += 1
            continue
        at_line_start = False
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == 'R' and i + 1 < n and text[i + 1] == '"' and (
                i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')
                or text[i - 1] in 'uUL8'):
            m = re.compile(r'R"([^()\\ ]{0,16})\(').match(text, i)
            if not m:
                i += 1
                continue
            end = text.find(')' + m.group(1) + '"', m.end())
            j = n if end < 0 else end + len(m.group(1)) + 2
            blank(i, j)
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and text[i - 1].isalnum())):
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            j = min(j + 1, n)
            blank(i, j)
            i = j
        else:
            i += 1
    return ''.join(out)


FUNCTION_TAIL = re.compile(
    r'\)\s*(?:(?:const|noexcept(?:\s*\([^)]*\))?|override|final|mutable|&&|&)\s*)*'
    r'(?:->[^{;]*)?$')
CLASS_HEAD = re.compile(r'(?:^|\s)(?:class|struct|union|enum)\b')
CTOR_INIT_LIST = re.compile(r'\)\s*(?:noexcept\s*)?:\s*[\w:]+\s*[({]')
ATTRIBUTES = re.compile(r'alignas\s*\([^)]*\)|\[\[[^\]]*\]\]|__attribute__\s*\(\(.*?\)\)')
NAME_BEFORE_PAREN = re.compile(r'(operator\s*\S+?|[~\w:]+)\s*(?:<[^()]*>)?\s*$')


def classify(head):
    """What a '{' outside any function opens, given the text before it."""
    h = ATTRIBUTES.sub(' ', head).strip()
    if re.search(r'(?:^|\s)namespace\b', h) or re.match(r'extern\s*$', h):
        return 'scope'
    if CLASS_HEAD.search(h) and '(' not in h:
        return 'scope'
    if '(' in h and FUNCTION_TAIL.search(h):
        return 'function'
    if CTOR_INIT_LIST.search(h) and h.endswith('}'):
        return 'function'  # a constructor whose last member is brace-initialised
    return 'data'


def function_name(head):
    depth = 0
    for k, ch in enumerate(head):
        if ch == '(':
            if depth == 0:
                m = NAME_BEFORE_PAREN.search(head[:k])
                if m and m.group(1) not in ('', ':'):
                    return m.group(1).replace(' ', '')
                return 'lambda'
            depth += 1
        elif ch == ')':
            depth -= 1
    return '?'


def find_functions(text):
    """Yields (name, first_line, line_count) for each function body."""
    code = blank_code(text)
    # 'scope' | ('data', head_start) | ('function', name, start_line)
    stack = []
    head_start = 0
    depth_in_function = 0
    line_of = _line_index(code)
    for i, ch in enumerate(code):
        if ch not in '{};':
            continue
        if stack and isinstance(stack[-1], tuple) and stack[-1][0] == 'function':
            if ch == '{':
                depth_in_function += 1
            elif ch == '}':
                if depth_in_function == 0:
                    _, name, start = stack.pop()
                    end = line_of(i)
                    yield name, start, end - start + 1
                    head_start = i + 1
                else:
                    depth_in_function -= 1
            continue
        if ch == ';':
            head_start = i + 1
        elif ch == '{':
            head = code[head_start:i]
            kind = classify(' '.join(head.split()))
            if kind == 'data':
                # Braces of an initializer stay part of the head, so that a
                # constructor's brace-initialised member is still its head.
                stack.append(('data', head_start))
                continue
            if kind == 'function':
                offset = head_start + (len(head) - len(head.lstrip()))
                stack.append(('function', function_name(' '.join(head.split())),
                              line_of(offset)))
                depth_in_function = 0
            else:
                stack.append(kind)
            head_start = i + 1
        else:  # '}'
            top = stack.pop() if stack else 'scope'
            head_start = top[1] if isinstance(top, tuple) else i + 1
    # An unclosed function (unbalanced source) is not reported.


def _line_index(text):
    starts = [0]
    for k, ch in enumerate(text):
        if ch == '\n':
            starts.append(k + 1)

    def line_of(offset):
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    return line_of


def violations(root):
    """Yields (key, message): key is ('file', path) or ('function', path, name)."""
    src = os.path.join(root, 'src')
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in sorted(filenames):
            if not f.endswith(SOURCE_SUFFIXES):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            with open(path, encoding='utf-8', errors='replace') as fh:
                text = fh.read()
            lines = text.count('\n') + (0 if text.endswith('\n') or not text else 1)
            if lines > FILE_LINES_MAX:
                yield ('file', rel), f'{rel}: {lines} lines (max {FILE_LINES_MAX})'
            for name, start, count in find_functions(text):
                if count > FUNCTION_LINES_MAX:
                    yield (('function', rel, name),
                           f'{rel}:{start}: {name}: {count} lines (max {FUNCTION_LINES_MAX})')


def read_allowlist(path):
    """Returns {key: reason}; exits 2 on a malformed line."""
    allowed = {}
    if not os.path.exists(path):
        return allowed
    with open(path, encoding='utf-8') as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            entry, sep, reason = line.partition(' -- ')
            words = entry.split()
            ok = sep and reason.strip() and (
                (len(words) == 2 and words[0] == 'file') or
                (len(words) == 3 and words[0] == 'function'))
            if not ok:
                sys.stderr.write(f'{path}:{number}: expected "file PATH -- reason" or '
                                 f'"function PATH NAME -- reason"\n')
                sys.exit(2)
            allowed[tuple(words)] = reason.strip()
    return allowed


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=os.path.dirname(here))
    parser.add_argument('--allowlist', default=os.path.join(here, 'check_sizes_allowlist.txt'))
    parser.add_argument('--all', action='store_true', help='print allowed violations too')
    args = parser.parse_args()
    allowed = read_allowlist(args.allowlist)
    found = set()
    new = []
    for key, message in violations(args.root):
        found.add(key)
        if key in allowed:
            if args.all:
                print(f'allowed: {message} ({allowed[key]})')
        else:
            new.append(message)
    for key in sorted(set(allowed) - found):
        print(f'stale allowlist entry (no longer a violation, remove it): {" ".join(key)}')
    for message in new:
        print(f'too big: {message}')
    if new:
        print(f'{len(new)} new violation(s): split them, or list them with a reason in '
              f'{os.path.relpath(args.allowlist, args.root)}')
        return 1
    print(f'check_sizes: ok ({len(found)} allowed violation(s))')
    return 0


if __name__ == '__main__':
    sys.exit(main())
