"""Install mmnckd beside mmpretrain: ``pip install -e .``.

Like mmpretrain, the repo's ``configs/``, ``tools/``, ``zoo/`` (the published
weights, which the metafiles name relative to ``model-index.yml``) and
``model-index.yml`` are shipped inside the package under ``mmnckd/.mim``
(symlinked for an editable install, copied for a wheel), so an installed
mmnckd finds its own configs and weights.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'zoo', 'model-index.yml')


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'mmnckd', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(path):
    with open(osp.join(HERE, path)) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-r'))
        ]


def add_mim_extension():
    """Link (editable install) or copy (wheel/sdist) the mim files."""
    if any(cmd in sys.argv for cmd in ('develop', 'editable_wheel')):
        mode = 'symlink'
    elif any(
            cmd in sys.argv
            for cmd in ('sdist', 'bdist_wheel', 'build', 'install')):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(HERE, 'mmnckd', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmnckd',
        version=read_version(),
        description='Neural-Collapse-inspired Knowledge Distillation '
        '(NCKD) for mmpretrain',
        long_description=open(osp.join(HERE, 'README.md')).read()
        if osp.exists(osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.8',
        packages=find_packages(exclude=('configs', 'tools', 'tests')),
        include_package_data=True,
        package_data={'mmnckd': ['.mim/**/*', '.mim/*']},
        install_requires=read_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': read_requirements('requirements/tests.txt'),
            'mim': read_requirements('requirements/mminstall.txt'),
        },
        zip_safe=False)
