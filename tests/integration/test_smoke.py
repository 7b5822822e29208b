import requests

from conftest import parse_response, uwsgi_request


def test_hello_through_nginx(stack):
    s = stack("hello.py", "--tornado", "4")
    r = requests.get(s.url + "/", timeout=10)
    assert r.status_code == 200
    assert r.text == "Hello, World!"
    s.gyre.wait_log("GET / => generated 13 bytes")  # logged after the response left


def test_hello_raw_uwsgi(gyre):
    g = gyre("hello.py")
    status, headers, body = parse_response(uwsgi_request(g.socket, {"PATH_INFO": "/x"}))
    assert (status, body) == (200, b"Hello, World!")
    assert headers["content-length"] == "13"
