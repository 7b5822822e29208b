"""--module cli_pkg.mod[:callable] for test_cli.py."""


def _app(text):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text]
    return app


application = _app(b"cli_pkg.mod application")
custom = _app(b"cli_pkg.mod custom")
other = _app(b"cli_pkg.mod other")
