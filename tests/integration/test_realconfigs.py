"""Real uWSGI deployments, unchanged, on gyre: tests/realconfigs/ holds 60+ configs of public
projects (ini files and command lines, each with its source); each one is rewritten only where it
names what cannot exist here (its app, sockets, paths, users: see tests/realconfigs/harness.py),
served, and asked one request over the protocol its socket speaks.

A file gyre cannot serve yet is listed in tests/realconfigs/EXPECTED and is xfail(strict=True): the
day it is served, this test fails until its line is removed (scripts/realconfigs.py
--update-expected regenerates the list). The session ends with `realconfigs: gyre served N/M`.

GYRE_REALCONFIG_SERVER=uwsgi runs the same files on Debian's uWSGI (expected failures from
tests/realconfigs/EXPECTED.uwsgi: what this machine cannot serve at all).
"""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "realconfigs"))
import harness  # noqa: E402

SERVER = os.environ.get("GYRE_REALCONFIG_SERVER", "gyre")
SOURCES = harness.corpus()
EXPECTED = harness.load_expected(SERVER)
RESULTS = {}


class _Summary:
    """Prints `served N/M` after the session's other summaries (registered by the fixture below:
    no conftest.py hook needed)."""

    def pytest_terminal_summary(self, terminalreporter):
        if RESULTS:
            served = sum(o.ok for o in RESULTS.values())
            terminalreporter.write_line("realconfigs: %s served %d/%d" % (SERVER, served,
                                                                         len(RESULTS)))


@pytest.fixture(scope="module", autouse=True)
def served_summary(request):
    plugin = _Summary()
    request.config.pluginmanager.register(plugin, "realconfigs-summary")
    yield


def corpus_params():
    for src in SOURCES:
        marks = []
        if src.name in EXPECTED:
            marks.append(pytest.mark.xfail(strict=True, reason=EXPECTED[src.name]))
        yield pytest.param(src, id=src.name, marks=marks)


def test_corpus_is_real_and_large():
    """60+ files, 7+ command lines, each from a named commit of a public repository."""
    assert len(SOURCES) >= 60
    assert sum(s.kind == "cmdline" for s in SOURCES) >= 7
    for src in SOURCES:
        assert re.match(r"https://github\.com/[^/]+/[^/]+/blob/[0-9a-f]{40}/", src.source), \
            "%s: no `# source: https://github.com/OWNER/REPO/blob/COMMIT/PATH` header" % src.name
    assert len({s.source for s in SOURCES}) == len(SOURCES), "a source is in the corpus twice"


def test_expected_lists_only_corpus_files():
    names = {s.name for s in SOURCES}
    assert set(EXPECTED) <= names, "EXPECTED names files not in the corpus: %s" % (
        sorted(set(EXPECTED) - names))


@pytest.mark.parametrize("src", corpus_params())
def test_realconfig_serves(src):
    out = harness.run(src, SERVER)
    RESULTS[src.name] = out
    assert out.ok, "%s cannot serve %s: %s\nrewrites:\n  %s\nlog (end):\n%s" % (
        SERVER, src.name, out.error, "\n  ".join(out.rewrites), out.log[-3000:])


def ini_sources():
    return [pytest.param(s, id=s.name) for s in SOURCES if s.kind == "ini"]


@pytest.mark.parametrize("src", ini_sources())
def test_rewrite_keeps_every_other_line_verbatim(src):
    """The harness changes only the lines its rules name (sockets, paths, app, users, venvs)."""
    box = harness.Sandbox()
    try:
        plan = harness.make_plan(src, box)
        rewritten = open(plan.args[plan.args.index("--ini") + 1], encoding="utf-8").read()
    finally:
        box.cleanup()
    before, after = src.body.split("\n"), rewritten.split("\n")
    assert len(before) == len(after)
    rewritable = set(harness.SOCKET_PROTO) | harness.FILE_OPTS | harness.DIR_OPTS | \
        harness.VENV_OPTS | set(harness.USER_OPTS) | {"static-map", "static-map2", "mount",
                                                       "logger", "req-logger"}
    for old, new in zip(before, after):
        if old != new:
            key = old.split("=")[0].strip()
            assert key in rewritable or old.split("=")[1].strip().startswith("/"), \
                "%s: %r rewritten as %r" % (src.name, old, new)


def test_harness_stops_a_daemonized_uwsgi_and_its_children():
    """Debian's uWSGI on a daemonizing config (mark2cure: daemonize, master, 4 workers): served,
    and no process of the run is left (the harness kills by an environment tag, not by pid)."""
    src = next(s for s in SOURCES if s.name == "mark2cure-deploy-uwsgi.ini")
    out = harness.run(src, "uwsgi")
    assert out.ok, out.error
    assert "daemonize" in " ".join(out.rewrites)
    assert harness.tagged_pids(out.tag) == []
