"""Runs one vendored Paho interoperability suite, unmodified, and writes one JSON line per test.

usage: run_suite.py RESULTS_FILE SCRIPT [SCRIPT OPTIONS...]
  e.g. run_suite.py /tmp/r.jsonl client_test.py --hostname 127.0.0.1 -p 1883
  (not -h: both scripts test `o in ("--help")`, a substring test that "-h" passes, and print usage)
environment: INTEROP_USERNAME / INTEROP_PASSWORD: credentials every CONNECT of the suite carries
             (the suites have no option for them); INTEROP_ONLY: comma-separated test names to run;
             INTEROP_LIST=1: write the suite's test names, one a line, instead of running them;
             INTEROP_TEST_TIMEOUT: seconds one test may take (default 30).

The script runs as __main__ with its own option parsing, so host, port and the topic lists are set
exactly as upstream intends; only its final unittest.main() is replaced: client_test.py leaves
`-h`/`-p` in sys.argv, where unittest.main() would read them as its own options and exit.
"""

import json
import os
import runpy
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PAHO = os.path.join(HERE, "paho")
sys.path.insert(0, PAHO)

import mqtt.clients.V311.main as v311  # noqa: E402  (needs PAHO on the path)
import mqtt.clients.V5.main as v5  # noqa: E402


# A test may wait forever for something a broker never does (test_flow_control2 loops until the
# server disconnects it for exceeding Receive Maximum; mosquitto queues instead): the alarm ends
# that test with an error and the suite goes on with the next one.
TEST_TIMEOUT = float(os.environ.get("INTEROP_TEST_TIMEOUT", "30"))


class TestTimeout(Exception):
    pass


def on_alarm(_signum, _frame):
    raise TestTimeout("no result after %g s" % TEST_TIMEOUT)


def with_credentials(client_class, username, password):
    connect = client_class.connect

    def connect_with_credentials(self, *args, **kwargs):
        kwargs.setdefault("username", username)
        kwargs.setdefault("password", password)
        return connect(self, *args, **kwargs)

    client_class.connect = connect_with_credentials


class JsonLinesResult(unittest.TextTestResult):
    """The usual text report on stderr, plus one line per finished test in the results file."""

    def __init__(self, out, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = out
        self.started = time.monotonic()  # setUpClass errors are recorded without a startTest

    def startTest(self, test):
        self.started = time.monotonic()
        super().startTest(test)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def record(self, test, status, err=None):
        # with buffer=True this includes what the test printed: the suites print their own tracebacks
        detail = "" if err is None else self._exc_info_to_string(err, test)[-3000:]
        self.out.write(json.dumps({"name": test.id().split(".")[-1], "status": status,
                                   "seconds": round(time.monotonic() - self.started, 2), "detail": detail}) + "\n")
        self.out.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "fail", err)

    def addError(self, test, err):
        super().addError(test, err)
        self.record(test, "timeout" if err[0] is TestTimeout else "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skip")


def main():
    results_file, script = sys.argv[1], sys.argv[2]
    username = os.environ.get("INTEROP_USERNAME")
    if username:
        password = os.environ.get("INTEROP_PASSWORD", "").encode("utf-8")
        with_credentials(v311.Client, username, password)
        with_credentials(v5.Client, username, password)
    only = [n for n in os.environ.get("INTEROP_ONLY", "").split(",") if n]

    with open(results_file, "w", encoding="utf-8") as out:
        def run_tests(*_args, **_kwargs):
            module = sys.modules["__main__"]  # the script's namespace while runpy runs it
            if os.environ.get("INTEROP_LIST"):
                out.write("\n".join(unittest.defaultTestLoader.getTestCaseNames(module.Test)) + "\n")
                sys.exit(0)
            suite = unittest.defaultTestLoader.loadTestsFromName("Test", module) if not only else \
                unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromName("Test." + n, module) for n in only)
            runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, buffer=True,
                                             resultclass=lambda *a, **k: JsonLinesResult(out, *a, **k))
            result = runner.run(suite)
            sys.exit(0 if result.wasSuccessful() else 1)

        signal.signal(signal.SIGALRM, on_alarm)
        unittest.main = run_tests
        sys.argv = [os.path.join(PAHO, script)] + sys.argv[3:]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
