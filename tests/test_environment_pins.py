"""environment.yml and the pip requirement files must pin the same versions."""

import re

import yaml

from facelib.config import REPO_DIR


def _pins(path, python="3.11"):
    """name -> pinned version for one Python version (environment markers evaluated for it)."""
    from packaging.requirements import Requirement

    pins = {}
    for line in (REPO_DIR / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"python_version": python}):
                (spec,) = req.specifier
                assert spec.operator == "==", f"{line}: pin with =="
                pins[req.name.lower()] = spec.version
    return pins


def _environment_pins():
    text = (REPO_DIR / "environment.yml").read_text()
    env = yaml.safe_load(text)
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for item in dep["pip"]:
                name, version = item.split(";")[0].strip().split("==")  # an environment marker may follow
                pins[name.lower()] = version
        elif "=" in dep:
            name, version = dep.split("=", 1)
            pins[name.lower()] = version
    # The --no-deps packages cannot go in a conda pip section: environment.yml names them in its instructions.
    for name, version in re.findall(r"([a-z0-9-]+)==([0-9][^\s]*)", text.split("name:")[0]):
        pins[name.lower()] = version
    return pins


def test_environment_yml_matches_requirements():
    env = _environment_pins()
    wanted = {**_pins("requirements.txt"), **_pins("requirements-nodeps.txt")}
    missing = sorted(set(wanted) - set(env))
    assert not missing, f"environment.yml does not pin {missing}"
    different = {k: (v, env[k]) for k, v in wanted.items() if env[k] != v}
    assert not different, f"pins differ (requirements, environment.yml): {different}"


def test_every_supported_python_gets_every_package():
    names = set(_pins("requirements.txt", "3.11"))
    for python in ("3.10", "3.12"):
        assert set(_pins("requirements.txt", python)) == names, f"Python {python} misses a pin"


def test_installed_versions_match_the_pins():
    import platform
    from importlib.metadata import version

    python = ".".join(platform.python_version_tuple()[:2])
    for name, pinned in {**_pins("requirements.txt", python), **_pins("requirements-nodeps.txt", python)}.items():
        installed = version(name)
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, pinned {pinned}: run `make setup`"
