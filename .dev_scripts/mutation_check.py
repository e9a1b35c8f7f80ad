"""Hand mutations of the losses, hooks and distillers: does the suite see?

    python .dev_scripts/mutation_check.py [--pytest-args "-m 'not slow'"]

Each mutation changes one line of a copy of the repository (a known, small
bug: a swapped momentum, a dropped factor, a skipped check) and runs, on
that copy, the tests of the module it mutates (slow ones included); the
mutation is *killed* when a test fails. The whole suite kills at least
what these kill.
Prints one row per mutation and the number killed. The repository itself is
never modified; the copy is HEAD (commit first).
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: (file, original text, mutated text, what the mutation breaks, the tests
#: of that module)
MUTATIONS = [
    ('mmnckd/models/losses/etf_structure_loss.py',
     'self.momentum * old + (1.0 - self.momentum) * means',
     '(1.0 - self.momentum) * old + self.momentum * means',
     'NC2 memory: momentum and 1 - momentum swapped',
     ['tests/test_models/test_losses/test_etf_structure_loss.py']),
    ('mmnckd/models/losses/kd_loss.py', 'kl.sum(dim=1).mean() * self.tau**2',
     'kl.sum(dim=1).mean()', 'KD: tau^2 factor dropped',
     ['tests/test_models/test_losses/test_kd_loss.py']),
    ('mmnckd/models/losses/dkd_loss.py',
     '(self.alpha * tckd + self.beta * ntkd) * self.tau**2',
     '(self.alpha * tckd + self.beta * ntkd) * self.tau',
     'DKD: tau instead of tau^2',
     ['tests/test_models/test_losses/test_dkd_loss.py']),
    ('mmnckd/models/losses/dkd_loss.py',
     'min((epoch + 1) / self.warmup_epochs, 1.0)',
     'min(epoch / self.warmup_epochs, 1.0)', 'DKD: warm-up off by one',
     ['tests/test_models/test_losses/test_dkd_loss.py']),
    ('mmnckd/models/losses/prototype_align_loss.py', '(weights * (1.0 - cos))',
     '(weights * (1.0 + cos))', 'NC1: cosine sign flipped',
     ['tests/test_models/test_losses/test_prototype_align_loss.py']),
    ('mmnckd/models/losses/prototype_align_loss.py',
     'F.log_softmax(cos / self.tau, dim=1)',
     'F.log_softmax(cos * self.tau, dim=1)',
     'NC1 contrast: temperature multiplied',
     ['tests/test_models/test_losses/test_prototype_align_loss.py']),
    ('mmnckd/models/heads/etf_head.py',
     'math.sqrt(2.0) * math.log(max(num_classes - 1, 2))',
     'math.log(max(num_classes - 1, 2))', 'ETF head: sqrt(2) of the scale',
     ['tests/test_models/test_heads.py']),
    ('mmnckd/models/distillers/nckd_distiller.py',
     'F.normalize(mu - mu_g, dim=1', 'F.normalize(mu, dim=1',
     'prototypes not centred', ['tests/test_models/test_distillers']),
    ('mmnckd/models/distillers/single_teacher_distiller.py',
     '        super().train(mode)\n        self.teacher.eval()',
     '        super().train(mode)', 'teacher left in train mode',
     ['tests/test_models/test_distillers']),
    ('mmnckd/utils/loaders.py', "loader['drop_last'] = False",
     "loader['drop_last'] = loader.get('drop_last', False)",
     'prototype pass copies drop_last', ['tests/test_utils/test_loaders.py']),
    ('mmnckd/utils/loaders.py', 'shuffle=False, round_up=False',
     'shuffle=False, round_up=True', 'prototype pass pads the ranks',
     ['tests/test_utils/test_loaders.py']),
    ('mmnckd/evaluation/functional/nc_metrics.py',
     'nc1 = (quad / eig[keep]).sum() / K', 'nc1 = (quad / eig[keep]).sum()',
     'NC1 metric: /K dropped', ['tests/test_evaluation']),
    ('mmnckd/utils/state_check.py',
     'if torch.is_tensor(given[k]) and given[k].shape != own[k].shape',
     'if False', 'strict load ignores shape mismatches',
     ['tests/test_utils/test_state_check.py']),
    ('mmnckd/engine/hooks/random_state_hook.py',
     "    torch.set_rng_state(state['torch'])\n", '',
     'resume does not restore torch\'s generator',
     ['tests/test_engine/test_hooks/test_random_state_hook.py']),
    ('mmnckd/engine/hooks/teacher_prototype_hook.py',
     'if old is not None and new is not None and old != new', 'if False',
     'stale prototypes accepted',
     ['tests/test_engine/test_hooks/test_teacher_prototype_provenance.py']),
    ('mmnckd/models/distillers/single_teacher_distiller.py',
     "return message_hub.get_info('iter', 0) // iters_per_epoch",
     "return message_hub.get_info('epoch', 0)",
     'iteration-based epoch ignored',
     ['tests/test_engine/test_hooks/test_epoch_info_hook.py']),
]


def copy_repo(dst: Path) -> None:
    """The repository's tracked files at HEAD (commit before running)."""
    archive = subprocess.run(['git', 'archive', 'HEAD'],
                             cwd=REPO,
                             capture_output=True,
                             check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(dst)], input=archive, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--pytest-args',
        default='',
        help='extra pytest arguments, e.g. "-m \'not slow\'"')
    parser.add_argument('--only', type=int, nargs='*')
    args = parser.parse_args()
    rows, killed = [], 0
    for i, (path, old, new, what, tests) in enumerate(MUTATIONS):
        if args.only and i not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            copy_repo(tmp)
            text = (tmp / path).read_text()
            assert text.count(old) == 1, f'{path}: {old!r} not found once'
            os.remove(tmp / path)  # do not write through a shared inode
            (tmp / path).write_text(text.replace(old, new))
            start = time.time()
            proc = subprocess.run([
                sys.executable, '-m', 'pytest', '-x', '-q', '-p',
                'no:cacheprovider', *tests, *shlex.split(args.pytest_args)
            ],
                                  cwd=tmp,
                                  capture_output=True,
                                  text=True,
                                  env=dict(
                                      os.environ,
                                      PYTHONPATH=str(tmp),
                                      OMP_NUM_THREADS='1'))
            seconds = time.time() - start
        failed = [
            ln.split(' - ')[0] for ln in proc.stdout.splitlines()
            if ln.startswith('FAILED') or ln.startswith('ERROR')
        ]
        dead = proc.returncode != 0
        killed += dead
        rows.append((i, what, 'killed' if dead else 'SURVIVED',
                     failed[0] if failed else '', seconds))
        print(
            f'{i:2d} {what:45s} {rows[-1][2]:8s} {seconds:5.0f}s '
            f'{rows[-1][3]}',
            flush=True)
    print(f'{killed} of {len(rows)} mutations killed')
    return 0 if killed == len(rows) else 1


if __name__ == '__main__':
    sys.exit(main())
