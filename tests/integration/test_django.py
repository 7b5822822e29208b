"""A stock Django project served by gyre through nginx: the admin's login, on sqlite.

Django refuses its ORM where asyncio says a loop is running (SynchronousOnlyOperation), so this
is the check that a core, which runs synchronous WSGI code, shows no running loop to the app.
The project is tests/apps/django_site (Debian's python3-django); its database is migrated and
its superuser created by manage.py, with /usr/bin/python3, in the test's tmp directory.
"""
import os
import re
import subprocess

import pytest
import requests

from conftest import APPS

SITE = os.path.join(APPS, "django_site")
WSGI = os.path.join(SITE, "gyresite", "wsgi.py")
USER, PASSWORD = "gyre-admin", "correct-horse-battery"
TIMEOUT = 20.0

pytest.importorskip("django")


def manage(db, *args, **extra_env):
    env = dict(os.environ, GYRE_DJANGO_DB=db, DJANGO_SETTINGS_MODULE="gyresite.settings",
               **extra_env)
    r = subprocess.run(["/usr/bin/python3", os.path.join(SITE, "manage.py"), *args], cwd=SITE,
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr)


@pytest.fixture
def django_db(tmp_path):
    db = str(tmp_path / "db.sqlite3")
    manage(db, "migrate", "--noinput")
    manage(db, "createsuperuser", "--noinput", "--username", USER, "--email",
           "admin@example.com", DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    return db


def csrf_token(html):
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def test_django_admin_login_through_nginx(stack, django_db):
    s = stack(WSGI, "--tornado", "4", "--env", "GYRE_DJANGO_DB=" + django_db)
    with requests.Session() as http:
        r = http.get(s.url + "/admin/login/?next=/admin/", timeout=TIMEOUT)
        assert r.status_code == 200, (r.status_code, r.text[:2000], s.gyre.log())
        assert "csrftoken" in http.cookies, r.headers
        r = http.post(s.url + "/admin/login/?next=/admin/",
                      data={"csrfmiddlewaretoken": csrf_token(r.text), "username": USER,
                            "password": PASSWORD, "next": "/admin/"},
                      headers={"Referer": s.url + "/admin/login/"},
                      allow_redirects=False, timeout=TIMEOUT)
        # The login reads the user and writes the session: two ORM queries in a core.
        assert r.status_code == 302, (r.status_code, r.text[:2000], s.gyre.log())
        assert r.headers["Location"] == "/admin/", r.headers
        assert "sessionid" in http.cookies, r.headers
        r = http.get(s.url + "/admin/", allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 200, (r.status_code, r.text[:2000], s.gyre.log())
        assert USER in r.text, r.text[:2000]
        assert "Site administration" in r.text, r.text[:2000]
    log = s.gyre.log()
    assert "SynchronousOnlyOperation" not in log, log
    assert "Traceback" not in log, log
