"""The app of bench/parked.py: requests that park on the IOLoop, the seed's way, served
unchanged by gyre and by uWSGI's Tornado loop engine.

    /park     counts itself, then suspends its core on an IOLoop timer (PARK_SECONDS: far longer
              than the measurement; the bench closes the connections and stops the server)
    /parked   how many /park requests are suspended now (text)
    /hello    b"Hello, World!"
"""
import greenlet
from tornado.ioloop import IOLoop

PARK_SECONDS = 600
parked = 0


def _reply(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def park(environ, start_response):
    global parked
    me = greenlet.getcurrent()
    IOLoop.current().call_later(PARK_SECONDS, me.switch)
    parked += 1
    try:
        me.parent.switch()
    finally:
        parked -= 1
    return _reply(start_response, b"parked\n")


def application(environ, start_response):
    path = environ.get("PATH_INFO")
    if path == "/park":
        return park(environ, start_response)
    if path == "/parked":
        return _reply(start_response, str(parked).encode())
    return _reply(start_response, b"Hello, World!")
