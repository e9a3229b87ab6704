"""The package's structure: BasicSR is changed only by basicsr_snn/_compat.py, and no module imports itself
through others (lazy imports inside functions included)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'basicsr_snn'


def modules():
    """{dotted name: parsed module} of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def basicsr_names(tree):
    """The names a module binds to BasicSR's modules, classes and functions."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split('.')[0] for alias in node.names
                      if alias.name.split('.')[0] == 'basicsr'}
        elif isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'basicsr':
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def assignments_to_basicsr(tree):
    """``basicsr.x.y = ...``, ``SomeBasicSRClass.method = ...`` and ``setattr(<basicsr name>, ...)`` in ``tree``."""
    names = basicsr_names(tree)

    def root(node):
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'setattr':
            targets = [ast.Attribute(value=node.args[0], attr='?')]
        while targets:
            target = targets.pop()
            if isinstance(target, (ast.Tuple, ast.List)):
                targets.extend(target.elts)
            elif isinstance(target, ast.Attribute) and root(target) in names:
                found.append(f'line {node.lineno}: {ast.unparse(target)}')
    return found


def imported_modules(name, tree, known):
    """The package's modules that module ``name`` imports, anywhere in it."""
    package = name if (PACKAGE.parent / name.replace('.', '/') / '__init__.py').is_file() else name.rpartition('.')[0]
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f'{base}.{alias.name}'
                edges.add(target if target in known else base)
    return {edge for edge in edges if edge in known and edge != name}


def cycles(graph):
    """Every import cycle of ``graph`` (module -> imported modules), each once."""
    found, state, stack = [], {}, []

    def visit(module):
        state[module] = 'open'
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 'open':
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_only_compat_assigns_to_basicsr_attributes():
    offenders = {name: found for name, tree in modules().items() if name != 'basicsr_snn._compat'
                 for found in [assignments_to_basicsr(tree)] if found}
    assert offenders == {}


def test_the_scan_finds_an_assignment_to_basicsr():
    tree = ast.parse('import basicsr.train\nfrom basicsr.models.base_model import BaseModel as B\n'
                     'basicsr.train.build_model = None\nB.model_to_device = f\nsetattr(B, "x", 1)\n')
    assert len(assignments_to_basicsr(tree)) == 3


def test_compat_holds_at_most_150_lines():
    assert len((PACKAGE / '_compat.py').read_text().splitlines()) <= 150


def test_no_import_cycle_in_the_package():
    found = modules()
    # the package's __init__ registers every arch/model/dataset/loss module by importlib, not by an import
    graph = {name: imported_modules(name, tree, found) - {'basicsr_snn'} for name, tree in found.items()}
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c', 'a']]
