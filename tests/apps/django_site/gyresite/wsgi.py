"""The project's WSGI app, for gyre's --wsgi-file (which puts only this file's directory on
sys.path: the project's root goes there too, so that `gyresite` imports)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gyresite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
