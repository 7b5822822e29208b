#!/usr/bin/python3
"""manage.py of the Django project test_django.py serves with gyre (stock settings, sqlite)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gyresite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
