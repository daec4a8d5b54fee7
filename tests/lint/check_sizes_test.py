#!/usr/bin/env python3
"""tools/check_sizes.py against small source trees written here: it must find
a long function, a long file, a constructor, and nothing in literals or
comments; it must fail on a new violation, pass on an allowed one, and
refuse an allowlist entry without a reason."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '..', '..', 'tools', 'check_sizes.py')
sys.path.insert(0, os.path.dirname(SCRIPT))
import check_sizes  # noqa: E402


def body(lines):
    return ''.join(f'  x += {i};\n' for i in range(lines))


class FindFunctionsTest(unittest.TestCase):
    def test_counts_signature_to_closing_brace(self):
        text = 'namespace a {\nint F(int x)\n{\n' + body(3) + '  return x;\n}\n}  // namespace a\n'
        self.assertEqual(list(check_sizes.find_functions(text)), [('F', 2, 7)])

    def test_members_constructors_and_out_of_class_definitions(self):
        text = ('struct S : B<int> {\n'
                '  S(int x) : x_(x), y_{x} {\n    f();\n  }\n'
                '  int Get() const { return x_; }\n'
                '};\n'
                'auto S::Run() -> int {\n  return 1;\n}\n')
        names = [name for name, _, _ in check_sizes.find_functions(text)]
        self.assertEqual(names, ['S', 'Get', 'S::Run'])

    def test_braces_in_literals_comments_and_tables_are_not_code(self):
        text = ('constexpr int kN = 30\'000;\n'
                'const char* s = "{{{";  // {\n'
                'char c = \'{\';\n'
                '/* } */\n'
                'constexpr int kTable[] = {1, 2, 3};\n'
                'const char* r = R"x(}})x";\n'
                'void G() {\n  if (s) { }\n}\n')
        self.assertEqual(list(check_sizes.find_functions(text)), [('G', 7, 3)])


class RunTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        os.makedirs(os.path.join(self.root, 'src', 'm'))
        self.allowlist = os.path.join(self.root, 'allow.txt')
        with open(os.path.join(self.root, 'src', 'm', 'long.cc'), 'w') as f:
            f.write('void Long() {\n' + body(check_sizes.FUNCTION_LINES_MAX) + '}\n')
        with open(os.path.join(self.root, 'src', 'm', 'short.cc'), 'w') as f:
            f.write('void Short() {\n' + body(check_sizes.FUNCTION_LINES_MAX - 2) + '}\n')

    def run_script(self, allow):
        with open(self.allowlist, 'w') as f:
            f.write(allow)
        return subprocess.run([sys.executable, SCRIPT, '--root', self.root, '--allowlist',
                               self.allowlist], capture_output=True, text=True)

    def test_new_violation_fails(self):
        r = self.run_script('')
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('src/m/long.cc:1: Long: 82 lines', r.stdout)
        self.assertNotIn('Short', r.stdout)

    def test_allowed_violation_passes_and_stale_entry_is_reported(self):
        r = self.run_script('function src/m/long.cc Long -- a test\n'
                            'file src/m/gone.cc -- split long ago\n')
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn('stale allowlist entry', r.stdout)
        self.assertIn('src/m/gone.cc', r.stdout)

    def test_long_file_fails(self):
        with open(os.path.join(self.root, 'src', 'm', 'big.h'), 'w') as f:
            f.write('// x\n' * (check_sizes.FILE_LINES_MAX + 1))
        r = self.run_script('function src/m/long.cc Long -- a test\n')
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('src/m/big.h: 701 lines', r.stdout)

    def test_entry_without_reason_is_refused(self):
        r = self.run_script('function src/m/long.cc Long\n')
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)


if __name__ == '__main__':
    unittest.main()
