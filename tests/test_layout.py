"""The layout keeps its promises: the delivery package imports nothing from Flask."""
import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
WEB_FRAMEWORKS = ("flask", "werkzeug", "flask_limiter", "flask_wtf", "flask_cors", "flask_babel")


def imports_of(path):
    """Yield the absolute module names one app module imports (relative imports resolved)."""
    package = ".".join(("app", *path.relative_to(APP).with_suffix("").parts[:-1]))
    if path.name == "__init__.py":
        package = ".".join(("app", *path.relative_to(APP).parts[:-1]))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(filter(None, [".".join(base), node.module]))
            else:
                module = node.module
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def source_of(module):
    """The file of an app module or package, or None for anything else (a name in a module)."""
    parts = module.split(".")[1:]
    as_module = APP.joinpath(*parts).with_suffix(".py") if parts else None
    as_package = APP.joinpath(*parts, "__init__.py")
    if as_module and as_module.is_file():
        return as_module
    return as_package if as_package.is_file() and parts else None


def test_delivery_imports_nothing_from_flask_even_through_other_modules():
    seen, todo, chains = set(), [], {}
    for path in sorted((APP / "delivery").glob("*.py")):
        module = "app.delivery." + path.stem if path.stem != "__init__" else "app.delivery"
        todo.append((module, path))
        chains[module] = [module]
    offenders = []
    while todo:
        module, path = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in imports_of(path):
            if name.split(".")[0] in WEB_FRAMEWORKS:
                offenders.append(" -> ".join(chains[module] + [name]))
            elif name.startswith("app."):
                source = source_of(name)
                if source is not None and name not in seen:
                    chains.setdefault(name, chains[module] + [name])
                    todo.append((name, source))
    assert offenders == []
