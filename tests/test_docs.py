"""What the docs tell an operator or a developer to type exists, as written.

- README's configuration table lists every setting of app/ops/settings.py with its true default,
  and every other variable it lists is read by the service (with the default it states).
- Every Python name the docs cite (``app.ops.cli.publish``, ``from app.x import y``) imports.
- Every ``flask --app app <group> <command>`` the docs show is a command of the app.
"""
import importlib
import re

import pytest
from flask import Flask

from app import create_app
from app.ops import settings

from .servers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "clients" / "python" / "README.md"]
# Read before the app exists (gunicorn.conf.py, the embedded Redis, the secret key, metrics).
SOURCES = [ROOT / "gunicorn.conf.py", *sorted((ROOT / "app").rglob("*.py"))]


def readme_table():
    """{variable: its default cell's text} from README's "Configuration" table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        variable_cell, default_cell = [cell.strip() for cell in line.strip("|").split("|")][:2]
        variables = re.findall(r"`([A-Z0-9_]+)`", variable_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell)
        # "`A` / `B`" with "`1` / `2`": one default each; otherwise the cell is every one's
        shared = len(variables) > 1 and len(defaults) == len(variables)
        for i, variable in enumerate(variables):
            rows[variable] = "`%s`" % defaults[i] if shared else default_cell
    return rows


def documented(default_cell, value):
    """Whether a README default cell states ``value`` (a settings.py default)."""
    if value is None or (type(value) is int and value == 0 and default_cell.startswith("unset")):
        return default_cell.startswith("unset")  # (0 is "off" for some: RIPPLE_HISTORY_MAX_AGE_DAYS)
    stated = re.findall(r"`([^`]*)`", default_cell)
    if isinstance(value, bool):
        return stated == [str(value).lower()]
    if isinstance(value, (int, float)):
        return len(stated) == 1 and float(stated[0]) == float(value)
    return stated == [value]


def env_name(setting):
    return setting if setting == "REDIS_URL" else "RIPPLE_" + setting


def test_every_setting_is_in_the_readme_table_with_its_default():
    table = readme_table()
    wrong = {}
    for setting in (name for name in dir(settings) if name.isupper()):
        variable, value = env_name(setting), getattr(settings, setting)
        if variable not in table or not documented(table[variable], value):
            wrong[variable] = (value, table.get(variable, "missing from README"))
    assert not wrong, "README.md, Configuration: %s" % wrong


def test_every_other_variable_in_the_table_is_read_with_the_default_it_states():
    source = "\n".join(path.read_text() for path in SOURCES)
    table = readme_table()
    for variable in sorted(set(table) - {env_name(n) for n in dir(settings) if n.isupper()}):
        assert '"%s"' % variable in source, "%s is in README's table but nothing reads it" % variable
        for literal in re.findall(r'environ\.(?:get|setdefault)\("%s", "([^"]*)"\)' % variable, source):
            stated = table[variable].startswith("unset") if literal == "" else "`%s`" % literal in table[variable]
            assert stated, (variable, literal, table[variable])


def cited_names():
    """Dotted names of this repository's package the docs cite in code spans."""
    names = set()
    for path in DOCS:
        text = path.read_text()
        for module, name in re.findall(r"from (app(?:\.\w+)+) import (\w+)", text):
            names.add("%s.%s" % (module, name))
        names.update(re.findall(r"`(app(?:\.\w+)+)[`(]", text))
    # `app.wsgi_app`, `app.url_map`: a Flask application's attributes, not this package's modules
    flask_app = Flask(__name__)
    return sorted(name for name in names if not hasattr(flask_app, name.split(".")[1]))


@pytest.mark.parametrize("dotted", cited_names())
def test_every_python_name_the_docs_cite_imports(dotted):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            assert hasattr(target, attribute), "%s: no %s in %s" % (dotted, attribute, target.__name__)
            target = getattr(target, attribute)
        return
    pytest.fail("%s does not import" % dotted)


def documented_commands():
    commands = set()
    for path in DOCS:
        for group, command in re.findall(r"flask (?:--app app )?([a-z]+) ([a-z]+)", path.read_text()):
            commands.add((group, command))
    return sorted(commands)


def test_every_flask_command_the_docs_show_exists(redis_url):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret"})
    runner = app.test_cli_runner()
    missing = []
    for group, command in documented_commands():
        args = [group, "--help"] if group == "publish" else [group, command, "--help"]
        result = runner.invoke(args=args)
        if result.exit_code != 0:
            missing.append("flask %s %s" % (group, command))
    assert documented_commands() and not missing, missing


def test_flask_help_says_what_each_of_ripples_command_groups_is_for(redis_url):
    app = create_app({"TESTING": True, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret"})
    listing = app.test_cli_runner().invoke(args=["--help"]).output
    for group in sorted({group for group, _ in documented_commands()} - {"publish"}):
        line = next(line for line in listing.splitlines() if line.strip().startswith(group + " "))
        assert len(line.split(None, 1)) == 2, "flask --help lists %r with no description" % group


def test_the_readme_names_every_variable_instance_config_py_cannot_set():
    """What gunicorn.conf.py and the master read before the app exists (and REDIS_URL, which the
    master's embedded server overrides) is not taken from instance/config.py: README says so."""
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("A file `instance/config.py`"):].split("\n\n", 1)[0]
    settings_names = {env_name(n) for n in dir(settings) if n.isupper()}
    environment_only = (set(readme_table()) - settings_names - {"SECRET_KEY"}) | {"REDIS_URL"}
    missing = sorted(v for v in environment_only if "`%s`" % v not in paragraph)
    assert not missing, "README, instance/config.py: also name %s" % missing


def test_deployment_md_states_the_backlog_gunicorn_conf_py_sets():
    config, deployment = (ROOT / "gunicorn.conf.py").read_text(), (ROOT / "docs/deployment.md").read_text()
    default = re.search(r'backlog = _whole\("BACKLOG", (\d+)\)', config).group(1)
    stated = re.search(r"gunicorn's `backlog`: `BACKLOG`, ([\d,]+) by default", deployment)
    assert stated and stated.group(1).replace(",", "") == default  # it said 2,048, gunicorn's own
