"""README's "uwsgi API" section names every one of Debian uWSGI's `uwsgi` module names with its
status in gyre, and says so truthfully: a name listed as provided is in gyre's module and
works, one listed as "not yet, present" is there and says it is not provided yet, one listed as
absent or never is not there; and the counts line adds up. The names are read from both servers
running the same app, so a name uWSGI has and README forgets fails here."""
import json
import os
import re
import urllib.request

import pytest

from conftest import APPS, GYRE, ROOT, UWSGI, Session, free_port, wait_for

APP = os.path.join(APPS, "uwsgi_names_app.py")


def module_names(tmp, argv0):
    port = free_port()
    argv = [*argv0, "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", APP, "--master"]
    sess = Session(tmp, argv)
    try:
        got = {}

        def answers():
            assert sess.alive(), sess.log()
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
                    got.update(json.loads(r.read()))
                return True
            except OSError:
                return False
        wait_for(answers, 30, what="the module's names")
        return got
    finally:
        sess.kill_group()


def readme_section():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n## uwsgi API")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def names_in(text):
    """Every identifier written in backticks: `a b c` lists, `name(args)` calls."""
    out = set()
    for code in re.findall(r"`([^`]+)`", text):
        for word in code.split():
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word)
            if m and not word[m.end():].startswith("."):
                out.add(m.group(0))
    return out


def parts(section):
    """The names of each status, from the paragraphs that start with their bold titles."""
    blocks = re.split(r"\n(?=\*\*)", section)
    by_title = {}
    for b in blocks:
        m = re.match(r"\*\*([^*]+)\*\*", b)
        if m:
            body = b.split("\n\n")[0] if not m.group(1).startswith("Provided") else b
            if m.group(1).startswith("Provided"):  # the table's first column only
                body = "\n".join(row.split(" | ")[0] for row in b.splitlines()
                                 if row.startswith("| `") or row.startswith("| environ"))
            by_title[m.group(1)] = body
    return by_title


def status_of(title):
    if title.startswith("Provided"):
        return "provided"
    if title.startswith("Not yet: present"):
        return "present"
    if title.startswith("Not yet, absent") or title.startswith("Never"):
        return "absent"
    raise AssertionError("unknown status title %r" % title)


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("names"))
    return (module_names(tmp, [UWSGI, "--plugin", "python3"]), module_names(tmp, [GYRE]))


def test_readme_lists_every_uwsgi_name_with_its_true_status(names):
    theirs, ours = names
    section = readme_section()
    listed = {}
    for title, body in parts(section).items():
        for name in names_in(body) & set(theirs):
            assert name not in listed, "%s is listed twice in README's uwsgi API" % name
            listed[name] = status_of(title)
    missing = sorted(set(theirs) - set(listed))
    assert not missing, "README's uwsgi API does not say what gyre does of: %s" % missing
    for name, status in sorted(listed.items()):
        if status == "absent":
            assert name not in ours, "%s is listed as absent but gyre has it" % name
            continue
        assert name in ours, "%s is listed as %s but gyre lacks it" % (name, status)
        not_yet = "not provided yet" in (ours[name] or "")
        assert not_yet == (status == "present"), (name, status, ours[name])

    counts = {s: sum(1 for v in listed.values() if v == s) for s in ("provided", "present",
                                                                       "absent")}
    m = re.search(r"Status of each of the (\d+) names.*?:\s+(\d+) provided, (\d+) present but "
                  r"not yet working, (\d+) absent", section, re.S)
    assert m, "README's counts line is missing"
    assert [int(g) for g in m.groups()] == [len(theirs), counts["provided"], counts["present"],
                                            counts["absent"]], counts
