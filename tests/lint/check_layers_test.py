#!/usr/bin/env python3
"""tools/check_layers.py against small trees written here and against a copy
of the real tree with wrong-way includes planted in it: each planted
problem must be caught (exit 1, the file and line named), and the clean
trees must pass."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '..', '..', 'tools', 'check_layers.py')
ROOT = os.environ.get('SLUICE_SOURCE_ROOT', os.path.join(HERE, '..', '..'))

LAYERS = """\
base:
low: base
mid: low
top: mid low_part
pure base low
files low_part: include/sluice/mid/part.h
low_part: base
"""


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def run(root):
    result = subprocess.run([sys.executable, SCRIPT, '--root', root],
                            capture_output=True, text=True)
    return result.returncode, result.stderr


class SmallTreeTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        write(self.root, 'tools/layers.txt', LAYERS)
        write(self.root, 'include/sluice/base/b.h', '#pragma once\n')
        write(self.root, 'src/base/b.cc', '#include "sluice/base/b.h"\n')
        write(self.root, 'include/sluice/low/l.h', '#include "sluice/base/b.h"\n')
        write(self.root, 'src/low/l.cc', '#include "sluice/low/l.h"\n#include "private.h"\n')
        write(self.root, 'src/low/private.h', '#pragma once\n')
        write(self.root, 'include/sluice/mid/m.h', '#include "sluice/low/l.h"\n')
        write(self.root, 'include/sluice/mid/part.h', '#include "sluice/base/b.h"\n')
        write(self.root, 'src/mid/m.cc', '#include "sluice/mid/m.h"\n#include "absl/x.h"\n')
        write(self.root, 'src/top/t.cc',
              '#include "sluice/mid/m.h"\n#include "sluice/base/b.h"\n'
              '#include "sluice/mid/part.h"\n')

    def test_clean_tree_passes(self):
        self.assertEqual(run(self.root), (0, ''))

    def test_wrong_way_include_fails_the_check(self):
        write(self.root, 'src/low/l.cc', '#include "sluice/low/l.h"\n\n#include "sluice/top/t.h"\n')
        write(self.root, 'include/sluice/top/t.h', '#pragma once\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('src/low/l.cc:3: wrong-way include: low includes "sluice/top/t.h" of top',
                      err)

    def test_wrong_way_include_in_a_public_header_fails(self):
        write(self.root, 'include/sluice/base/b.h', '#include "sluice/low/l.h"\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('include/sluice/base/b.h:1: wrong-way include: base includes', err)

    def test_files_line_puts_a_header_in_a_lower_unit(self):
        # part.h lives in mid's folder but belongs to low_part: low_part may
        # not include mid, and low (not above low_part) may not include part.h.
        write(self.root, 'src/low/l.cc', '#include "sluice/mid/part.h"\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('low includes "sluice/mid/part.h" of low_part', err)

    def test_private_header_reached_from_another_folder_fails(self):
        write(self.root, 'src/mid/m.cc', '#include "../low/private.h"\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('src/mid/m.cc:1: "../low/private.h" reaches outside its folder', err)

    def test_moved_header_included_by_its_old_public_path_fails(self):
        write(self.root, 'src/mid/m.cc', '#include "sluice/low/private.h"\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('"sluice/low/private.h" is not a public header', err)

    def test_cycle_in_the_dag_fails(self):
        write(self.root, 'tools/layers.txt', LAYERS.replace('base:\n', 'base: top\n'))
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('cycle: ', err)

    def test_unused_edge_fails(self):
        write(self.root, 'tools/layers.txt', LAYERS.replace('top: mid', 'top: mid low'))
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('top declares low but no file of it includes a header of it', err)

    def test_pure_unit_on_an_impure_one_fails(self):
        write(self.root, 'tools/layers.txt', LAYERS.replace('pure base low', 'pure low'))
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('low is pure but depends on base, which is not', err)

    def test_unplaced_module_fails(self):
        write(self.root, 'src/extra/e.cc', '\n')
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('src/extra: not in', err)

    def test_meson_dependency_the_wrong_way_fails(self):
        write(self.root, 'src/low/meson.build',
              "low_lib = static_library('sluice_low', 'l.cc',\n"
              "  dependencies : [base_dep, mid_dep, toml_dep])\n")
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('library sluice_low depends on mid_dep', err)

    def test_diagram_must_match_the_layers_file(self):
        doc = ('text\n<!-- check_layers: begin -->\n```\nlayer unit\n'
               '  3  top ─▶ mid low_part\n  2  mid ─▶ low\n  1  low pure ─▶ base\n'
               '  1  low_part ─▶ base\n  0  base pure\n```\n<!-- check_layers: end -->\n')
        write(self.root, 'docs/ARCHITECTURE.md', doc)
        self.assertEqual(run(self.root), (0, ''))
        write(self.root, 'docs/ARCHITECTURE.md', doc.replace('mid ─▶ low', 'mid ─▶ base'))
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('mid is drawn ─▶ base but the layers file says low', err)
        write(self.root, 'docs/ARCHITECTURE.md', doc.replace('  2  mid', '  0  mid'))
        code, err = run(self.root)
        self.assertEqual(code, 1)
        self.assertIn('mid (layer 0) ─▶ low (layer 1) does not point down', err)
        write(self.root, 'docs/ARCHITECTURE.md', doc.replace('  1  low_part ─▶ base\n', ''))
        self.assertIn('unit low_part is not drawn', run(self.root)[1])

    def test_private_candidates_are_headers_only_their_module_needs(self):
        write(self.root, 'include/sluice/low/inner.h', '#pragma once\n')
        write(self.root, 'include/sluice/low/via_public.h', '#pragma once\n')
        write(self.root, 'include/sluice/low/l.h',
              '#include "sluice/base/b.h"\n#include "sluice/low/via_public.h"\n')
        write(self.root, 'src/low/l.cc', '#include "sluice/low/l.h"\n#include "sluice/low/inner.h"\n')
        write(self.root, 'tests/low/l_test.cc', '#include "sluice/low/inner.h"\n')
        result = subprocess.run([sys.executable, SCRIPT, '--root', self.root,
                                 '--private-candidates'], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split(),
                         ['include/sluice/low/inner.h'])

    def test_stamp_written_only_on_success(self):
        stamp = os.path.join(self.root, 'stamp')
        write(self.root, 'include/sluice/base/b.h', '#include "sluice/low/l.h"\n')
        args = [sys.executable, SCRIPT, '--root', self.root, '--stamp', stamp]
        self.assertEqual(subprocess.run(args, capture_output=True).returncode, 1)
        self.assertFalse(os.path.exists(stamp))
        write(self.root, 'include/sluice/base/b.h', '#pragma once\n')
        subprocess.run(args, check=True)
        self.assertTrue(os.path.exists(stamp))


class RealTreeTest(unittest.TestCase):
    """A copy of the project's src/, include/, docs/ and layers: clean, it passes;
    with one wrong-way include planted, it fails on that line."""

    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        for folder in ('src', 'include', 'docs'):
            shutil.copytree(os.path.join(ROOT, folder), os.path.join(self.root, folder))
        os.makedirs(os.path.join(self.root, 'tools'))
        shutil.copy(os.path.join(ROOT, 'tools', 'layers.txt'), os.path.join(self.root, 'tools'))

    def plant(self, rel, include):
        """Puts `#include "include"` on line 2 of rel; returns the undo."""
        path = os.path.join(self.root, rel)
        with open(path) as f:
            text = f.read()
        lines = text.split('\n')
        lines.insert(1, f'#include "{include}"')
        with open(path, 'w') as f:
            f.write('\n'.join(lines))
        return lambda: write(self.root, rel, text)

    def test_copy_passes(self):
        code, err = run(self.root)
        self.assertEqual((code, err), (0, ''))

    def test_planted_wrong_way_includes_are_caught(self):
        cases = [
            ('src/base/check.cc', 'sluice/server/server.h', 'base', 'server'),
            ('src/smtp/command.cc', 'sluice/io/ring.h', 'smtp', 'io'),
            ('src/pickup/batch.cc', 'sluice/spool/spool_writer.h', 'pickup', 'spool'),
            ('src/admin/merge.cc', 'sluice/log/accounting_log.h', 'admin', 'log'),
            ('include/sluice/queue/shaping.h', 'sluice/config/config.h', 'queue', 'config'),
            ('src/delivery/engine.cc', 'sluice/server/server.h', 'delivery', 'server'),
        ]
        for rel, include, unit, dep in cases:
            with self.subTest(rel=rel):
                undo = self.plant(rel, include)
                code, err = run(self.root)
                undo()
                self.assertEqual(code, 1)
                self.assertIn(f'{rel}:2: wrong-way include: {unit} includes "{include}" of {dep}',
                              err)


if __name__ == '__main__':
    unittest.main()
