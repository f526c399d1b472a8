"""A small shop project with real faults, for the second labelled corpus (``make_corpus2.py`` runs it).

Each test is labelled in ``LABELS`` with the category its fault was written to show; test names are neutral so
no rule can read the answer from them. Everything fails for real: real servers on loopback, real libraries, real
files, real removed APIs of installed libraries.
"""

from __future__ import annotations

FILES: dict[str, str] = {}
LABELS: dict[str, str] = {}  # node id (or node id prefix for parametrised tests) -> category

FILES["shop/__init__.py"] = ""
FILES["shop/orders.py"] = '''
from decimal import Decimal


class Order:
    def __init__(self, lines, coupon=None):
        self.lines = lines
        self.coupon = coupon


def subtotal(lines):
    return sum(q * p for q, p in lines) + 1  # off by one: the product bug


def average_price(lines):
    return sum(p for _, p in lines) / len([l for l in lines if l[0] > 100])


def discount_rate(code):
    rates = {"SPRING": 10, "VIP": 20}
    return rates[code.lower()]


def shipping(order):
    if order.lines:
        weight = sum(q for q, _ in order.lines)
    return 5 if weight < 10 else 0


def split_batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)][size]


def tax(amount):
    return Decimal(amount) * Decimal("0.2x")


def depth(n):
    return depth(n + 1)


def check_total(total):
    assert total >= 0, f"negative total {total}"
    return total


def export(order):
    import json
    return json.dumps({"order": order})


def parse_quantity(text):
    return int(text.split()[0])


def first_line(lines):
    return lines[0] if lines is not None else None


def next_batch(batches):
    return next(iter(batches))


def unpack_line(line):
    qty, price, currency = line
    return qty * price


def growth(rate):
    import math
    return math.exp(rate * 1000)


def line_qty(line):
    return line.qty


def ratio(part, whole):
    return round(part / whole * 100, 1)


def to_cents(amount):
    return amount * 100


def summary_errors(lines):
    try:
        undefined_helper(lines)  # noqa: F821
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""
'''
FILES["shop/catalog.py"] = '''
import re


def find_sku(pattern, skus):
    return [s for s in skus if re.compile(pattern).match(s)]


def label(item):
    return item.name.upper()


def lookup(items, key):
    for item in items:
        if item["sku"] == key:
            return item
    return None


def price_of(items, key):
    return lookup(items, key)["price"]


def parse_date(text):
    from datetime import datetime
    return datetime.strptime(text, "%Y/%m/%d")


def merge(a, b):
    return a + b
'''
FILES["shop/users.py"] = '''
import os
import sqlite3


class MissingCredentials(Exception):
    pass


class ApiAuthenticationError(RuntimeError):
    pass


def api_token():
    token = os.environ.get("SHOP_API_TOKEN_UNSET")
    if not token:
        raise MissingCredentials("SHOP_API_TOKEN_UNSET is not set")
    return token


def login(user, password):
    if password != "s3cret":
        raise ApiAuthenticationError(f"login rejected for {user}")
    return user


def find_user(conn, user_id):
    return conn.execute("SELECT id, name FROM users WHERE id = ?", (user_id,)).fetchone()


def user_name(conn, user_id):
    row = find_user(conn, user_id)
    return row[1]
'''
FILES["shop/compat.py"] = '''
import collections
import importlib.metadata
import inspect
import json


def is_mapping(value):
    return isinstance(value, collections.Mapping)


def arg_names(func):
    return inspect.getargspec(func).args


def dump(value):
    return json.dumps(value, encoding="utf-8")


def sdk_version():
    return importlib.metadata.version("shop-payments-sdk")


def check_versions():
    import sqlalchemy
    if not sqlalchemy.__version__.startswith("1.4"):
        raise RuntimeError(f"shop requires sqlalchemy 1.4.x but {sqlalchemy.__version__} is installed")


def load_config(text):
    import yaml
    return yaml.load(text)


def fetch(url):
    import requests
    return requests.get(url, verify_ssl=False, timeout=5)


def count_rows(engine):
    return engine.execute("select 1").scalar()
'''
FILES["shop/net.py"] = '''
import json
import socket
import urllib.request


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def get_json(url):
    return json.loads(get(url))


def ping(host, port, timeout=2):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"ping")
        return s.recv(10)
'''
FILES["tests/__init__.py"] = ""
FILES["tests/data/orders.json"] = '{"orders": [{"id": 1, "lines": [[2, 5.0]]}]}\n'
FILES["tests/data/broken_orders.json"] = '{"orders": [{"id": 1, "lines": [[2, 5.0]],}\n'
FILES["tests/data/customers.csv"] = 'id,name,city\n1,"Ann,Paris\n2,Bob,"Lyon"x\n'
FILES["tests/data/stock.xml"] = "<stock><item sku='AB1'>3</item><item></stock>\n"
FILES["tests/data/names.txt"] = "Zo\u00e9\nRen\u00e9e\n"
FILES["tests/data/prices.toml"] = '[prices]\nwidget = 3.5\ngadget = "4\n'
FILES["tests/data/settings.yaml"] = "shop:\n  currency: EUR\n   vat: [20\n"

FILES["tests/conftest.py"] = '''
import http.server
import json
import socket
import socketserver
import sqlite3
import threading
import time

import pytest


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        code = int(self.path.strip("/").split("/")[0] or 200)
        if code == 999:  # hang up without an answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
            self.connection.close()
            return
        if code == 998:
            time.sleep(3)
            code = 200
        body = json.dumps({"code": code}).encode() if code != 997 else b"<html>oops"
        self.send_response(200 if code == 997 else code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="session")
def http_url():
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 mail.test ESMTP\\r\\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.split(b" ")[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-mail.test\\r\\n250 AUTH PLAIN LOGIN\\r\\n")
            elif verb == b"AUTH":
                self.wfile.write(b"535 5.7.8 Authentication credentials invalid\\r\\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\\r\\n")
                return
            else:
                self.wfile.write(b"250 ok\\r\\n")


@pytest.fixture(scope="session")
def smtp_port():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SmtpHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    conn.execute("INSERT INTO users VALUES (1, 'ann')")
    yield conn
    conn.close()


@pytest.fixture
def seeded_db(db):
    db.executemany("INSERT INTO users VALUES (?, ?)", [(2, "bob"), (3, "bob")])
    return db


@pytest.fixture
def customer(db):
    return {"id": 1, "name": db.execute("SELECT name FROM users WHERE id = 1").fetchone()[0].title()}


@pytest.fixture
def broken_client(http_url):
    return http_url.rstrip("/").netloc


@pytest.fixture
def temp_dir_cleanup(tmp_path):
    yield tmp_path
    (tmp_path / "missing-dir" / "x").unlink()
'''


def _test(module: str, label: str, source: str, params: int = 0) -> None:
    """Add a test; its name is read from the source's first ``def``."""
    name = source.split("def ", 1)[1].split("(", 1)[0]
    FILES.setdefault(module, "import pytest\n")
    FILES[module] += "\n\n" + source.strip("\n") + "\n"
    LABELS[f"{module}::{name}"] = label


P, T, E, TO, D, DEP, A, F = ("product_bug", "test_bug", "environment", "timeout", "test_data", "dependency",
                             "authentication", "flaky")
ORD, CAT, USR, NET, CFG, SYNC, MAIL = ("tests/test_orders.py", "tests/test_catalog.py", "tests/test_users.py",
                                       "tests/test_net.py", "tests/test_config.py", "tests/test_sync.py",
                                       "tests/test_mail.py")

# --- product bugs: wrong values and errors raised in project code
_test(ORD, P, '''
@pytest.mark.parametrize("lines,total", [([(1, 2)], 2), ([(2, 3), (1, 1)], 7), ([], 0), ([(5, 1.5)], 7.5), ([(1, 1)] * 3, 3), ([(4, 0.25)], 1)])
def test_subtotal(lines, total):
    from shop.orders import subtotal
    assert subtotal(lines) == total
''')
_test(ORD, P, '''
@pytest.mark.parametrize("lines", [[(1, 2)], [(3, 4), (1, 9)], [(7, 7)]])
def test_average_price(lines):
    from shop.orders import average_price
    assert average_price(lines) > 0
''')
_test(ORD, P, '''
@pytest.mark.parametrize("code", ["SPRING", "VIP", "Spring", "vip"])
def test_discount_rate(code):
    from shop.orders import discount_rate
    assert discount_rate(code) in (10, 20)
''')
_test(ORD, P, '''
def test_shipping_for_empty_order():
    from shop.orders import Order, shipping
    assert shipping(Order([])) == 5
''')
_test(ORD, P, '''
@pytest.mark.parametrize("size", [2, 3, 4])
def test_split_batches(size):
    from shop.orders import split_batches
    assert split_batches(list(range(7)), size)
''')
_test(ORD, P, '''
def test_tax():
    from shop.orders import tax
    assert tax("10") == 2
''')
_test(ORD, P, '''
def test_recursion():
    from shop.orders import depth
    assert depth(0)
''')
_test(ORD, P, '''
@pytest.mark.parametrize("total", [-1, -250, -7])
def test_check_total(total):
    from shop.orders import check_total
    assert check_total(abs(total) * -1) == abs(total)
''')
_test(ORD, P, '''
def test_export():
    from shop.orders import Order, export
    assert export(Order([(1, 2)]))
''')
_test(ORD, P, '''
def test_summary_has_no_errors():
    from shop.orders import summary_errors
    assert summary_errors([(1, 2)]) == ""
''')
_test(ORD, P, '''
def test_invalid_quantity_is_rejected():
    from shop.orders import subtotal
    with pytest.raises(ValueError):
        subtotal([(-1, 5)])
''')
_test(CAT, P, '''
@pytest.mark.parametrize("pattern", ["(AB", "[x-", "*A"])
def test_find_sku(pattern):
    from shop.catalog import find_sku
    assert find_sku(pattern, ["AB1"]) == []
''')
_test(CAT, P, '''
def test_label_of_missing_item():
    from shop.catalog import label
    assert label(None) == ""
''')
_test(CAT, P, '''
@pytest.mark.parametrize("text", ["2026-01-02", "02.01.2026", "Jan 2 2026"])
def test_parse_date(text):
    from shop.catalog import parse_date
    assert parse_date(text).year == 2026
''')
_test(CAT, P, '''
def test_merge_lists():
    from shop.catalog import merge
    assert merge([1], (2,)) == [1, 2]
''')
_test(CAT, P, '''
import unittest


class TestCatalogue(unittest.TestCase):
    def test_merge_keeps_order(self):
        from shop.catalog import merge
        self.assertEqual(merge([2], [1]), [1, 2])
''')
LABELS["tests/test_catalog.py::TestCatalogue::test_merge_keeps_order"] = P
_test(NET, P, '''
@pytest.mark.parametrize("code", [500])
def test_server_error(http_url, code):
    import requests
    requests.get(f"{http_url}/{code}", timeout=5).raise_for_status()
''')
_test(NET, P, '''
def test_bad_json_from_api(http_url):
    from shop.net import get_json
    assert get_json(f"{http_url}/997")
''')

# --- test bugs: errors in the test code itself
_test(ORD, T, '''
def test_total_with_typo():
    from shop.orders import subtotal
    assert subtotal(linse) == 3  # noqa: F821
''')
_test(ORD, T, '''
@pytest.mark.parametrize("lines", [[(1, 2)], [(2, 2)], [(3, 1)]])
def test_subtotal_call(lines):
    from shop.orders import subtotal
    assert subtotal(lines, 0.2) > 0
''')
_test(ORD, T, '''
def test_uses_unknown_fixture(order_factory):
    assert order_factory()
''')
_test(USR, T, '''
def test_customer_fixture(customer, broken_client):
    assert customer["name"]
''')
_test(USR, T, '''
def test_temp_files(temp_dir_cleanup):
    (temp_dir_cleanup / "a.txt").write_text("a")
''')
_test(ORD, T, '''
def test_unbound_in_test():
    for line in []:
        total = line
    assert total == 0
''')
_test(CAT, T, '''
def test_test_list_index():
    expected = []
    assert expected[0] == "AB1"
''')
_test(CAT, T, '''
def test_dict_in_test():
    cases = {"a": 1}
    assert cases["b"] == 1
''')
_test(USR, T, '''
class TestClient:
    def setup_method(self):
        self.client = object()

    def test_attribute_typo(self):
        assert self.clinet  # noqa
''')
LABELS["tests/test_users.py::TestClient::test_attribute_typo"] = T
FILES["tests/test_broken_syntax.py"] = "def test_x(:\n    pass\n"
LABELS["tests/test_broken_syntax.py"] = T

# --- environment: the network or the machine failed
_test(NET, E, '''
@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_ping_refused(closed_port, attempt):
    from shop.net import ping
    assert ping("127.0.0.1", closed_port)
''')
_test(NET, E, '''
def test_requests_refused(closed_port):
    import requests
    requests.get(f"http://127.0.0.1:{closed_port}/", timeout=3)
''')
_test(NET, E, '''
@pytest.mark.parametrize("host", ["db.shop.invalid", "cache.shop.invalid", "queue.shop.invalid", "mail.shop.invalid", "s3.shop.invalid"])
def test_dns(host):
    from shop.net import ping
    ping(host, 5432)
''')
_test(NET, E, '''
def test_connection_reset(http_url):
    from shop.net import get
    get(f"{http_url}/999")
''')
_test(NET, E, '''
def test_requests_reset(http_url):
    import requests
    requests.get(f"{http_url}/999", timeout=3)
''')
_test(NET, E, '''
def test_disk_full():
    with open("/dev/full", "w") as f:
        f.write("x" * 10)
        f.flush()
''')
_test(NET, E, '''
def test_unavailable(http_url):
    import requests
    requests.get(f"{http_url}/503", timeout=3).raise_for_status()
''')
_test(NET, E, '''
def test_bad_gateway(http_url):
    from shop.net import get
    get(f"{http_url}/502")
''')

# --- timeouts
_test(NET, TO, '''
def test_socket_timeout(silent_port):
    import socket
    s = socket.create_connection(("127.0.0.1", silent_port), timeout=0.3)
    s.recv(10)
''')
_test(NET, TO, '''
@pytest.mark.parametrize("n", [1, 2, 3])
def test_requests_timeout(http_url, n):
    import requests
    requests.get(f"{http_url}/998", timeout=0.3)
''')
_test(NET, TO, '''
def test_urllib_timeout(http_url):
    from shop.net import get
    get(f"{http_url}/998", timeout=0.3)
''')
_test(SYNC, TO, '''
def test_subprocess_timeout():
    import subprocess, sys
    subprocess.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
''')
_test(SYNC, TO, '''
@pytest.mark.timeout(0.5)
def test_hangs():
    import time
    time.sleep(3)
''')
_test(SYNC, TO, '''
def test_future_timeout():
    import concurrent.futures, time
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(time.sleep, 1).result(timeout=0.2)
''')
_test(SYNC, TO, '''
def test_asyncio_timeout():
    import asyncio
    asyncio.run(asyncio.wait_for(asyncio.sleep(2), 0.2))
''')

# --- authentication
_test(USR, A, '''
@pytest.mark.parametrize("code", [401, 403, 401403])
def test_api_access(http_url, code):
    import requests
    requests.get(f"{http_url}/{code % 1000 if code > 1000 else code}", timeout=3).raise_for_status()
''')
_test(MAIL, A, '''
@pytest.mark.parametrize("user", ["shop", "billing"])
def test_smtp_login(smtp_port, user):
    import smtplib
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=3) as smtp:
        smtp.login(user, "wrong")
''')
_test(USR, A, '''
def test_missing_credentials():
    from shop.users import api_token
    assert api_token()
''')
_test(USR, A, '''
@pytest.mark.parametrize("user", ["ann", "bob", "cyd"])
def test_login(user):
    from shop.users import login
    assert login(user, "guess")
''')
_test(USR, A, '''
def test_read_protected():
    with open("/proc/1/mem", "rb") as f:
        f.read(1)
''')
_test(USR, A, '''
def test_urllib_unauthorised(http_url):
    from shop.net import get
    get(f"{http_url}/401")
''')

# --- test data: fixture files and rows the tests rely on
_test(CFG, D, '''
def test_orders_fixture():
    import json, pathlib
    data = json.loads((pathlib.Path(__file__).parent / "data" / "broken_orders.json").read_text())
    assert data["orders"]
''')
_test(CFG, D, '''
def test_customers_csv():
    import csv, pathlib
    with open(pathlib.Path(__file__).parent / "data" / "customers.csv", newline="") as f:
        rows = list(csv.DictReader(f, strict=True))
    assert len(rows) == 2
''')
_test(CFG, D, '''
@pytest.mark.parametrize("name", ["returns.json", "stock.csv", "prices.yaml", "fixtures.sql", "rates.txt"])
def test_missing_fixture_file(name):
    import pathlib
    assert (pathlib.Path(__file__).parent / "data" / name).read_text()
''')
_test(CFG, D, '''
def test_settings_yaml():
    import pathlib, yaml
    assert yaml.safe_load((pathlib.Path(__file__).parent / "data" / "settings.yaml").read_text())
''')
_test(USR, D, '''
def test_seeded_users(seeded_db):
    assert seeded_db.execute("SELECT count(*) FROM users").fetchone()[0] == 3
''')
_test(USR, D, '''
@pytest.mark.parametrize("user_id", [7, 8, 9, 10, 11])
def test_user_name(db, user_id):
    from shop.users import user_name
    assert user_name(db, user_id)
''')
_test(USR, D, '''
def test_orm_lookup():
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session
    engine = create_engine("sqlite://")
    with Session(engine) as s:
        s.execute(text("CREATE TABLE u (id INTEGER)"))
        assert s.execute(text("SELECT id FROM u WHERE id = 5")).scalar_one()
''')
_test(CAT, P, '''
def test_price_of_unknown_sku():
    from shop.catalog import price_of
    assert price_of([{"sku": "AB1", "price": 3}], "ZZ9") == 3
''')
_test(USR, D, '''
def test_missing_table(db):
    db.execute("SELECT * FROM orders")
''')

# --- dependency: packages missing, or their APIs changed under the code
_test(CFG, DEP, '''
@pytest.mark.parametrize("name", ["shop_payments_sdk", "shop_tax_client", "shop_pdf_render"])
def test_optional_sdk(name):
    import importlib
    importlib.import_module(name)
''')
_test(CFG, DEP, '''
def test_removed_name():
    from json import JSONDecodeErrorX  # noqa: F401
''')
_test(CFG, DEP, '''
def test_collections_mapping():
    from shop.compat import is_mapping
    assert is_mapping({})
''')
_test(CFG, DEP, '''
def test_getargspec():
    from shop.compat import arg_names
    assert arg_names(lambda a: a) == ["a"]
''')
_test(CFG, DEP, '''
def test_dump_encoding():
    from shop.compat import dump
    assert dump({"a": 1})
''')
_test(CFG, DEP, '''
def test_sdk_version():
    from shop.compat import sdk_version
    assert sdk_version()
''')
_test(CFG, DEP, '''
def test_versions():
    from shop.compat import check_versions
    check_versions()
''')
_test(CFG, DEP, '''
def test_yaml_load():
    from shop.compat import load_config
    assert load_config("a: 1") == {"a": 1}
''')
_test(CFG, DEP, '''
def test_requests_kwarg(http_url):
    from shop.compat import fetch
    assert fetch(http_url + "/200")
''')
_test(CFG, DEP, '''
def test_pydantic_settings():
    from pydantic import BaseSettings  # noqa: F401
''')
_test(CFG, DEP, '''
def test_engine_execute():
    from sqlalchemy import create_engine
    from shop.compat import count_rows
    assert count_rows(create_engine("sqlite://")) == 1
''')
_test(CFG, DEP, '''
def test_httpx_app_argument():
    import httpx
    httpx.Client(app=object())
''')

_test(ORD, P, '''
@pytest.mark.parametrize("text", ["12", "7 units", "1,5"])
def test_quantity_parse(text):
    from shop.orders import parse_quantity
    assert parse_quantity(text) > 0
''')
_test(ORD, P, '''
def test_first_line_of_empty_order():
    from shop.orders import first_line
    assert first_line([]) is None
''')
_test(NET, E, '''
def test_memory():
    buffer = bytearray(2 ** 62)
    assert buffer
''')
_test(USR, A, '''
def test_urllib_forbidden(http_url):
    from shop.net import get
    get(f"{http_url}/403")
''')
_test(CFG, D, '''
def test_toml_fixture():
    import pathlib, tomllib
    assert tomllib.loads((pathlib.Path(__file__).parent / "data" / "prices.toml").read_text())
''')
_test(CFG, DEP, '''
def test_asyncio_coroutine():
    import asyncio

    @asyncio.coroutine
    def legacy():
        yield
''')
_test(CFG, DEP, '''
def test_pkg_resources_style_check():
    import importlib.metadata
    assert importlib.metadata.version("shop-legacy-client")
''')

_test(ORD, P, '''
def test_next_batch_of_nothing():
    from shop.orders import next_batch
    assert next_batch([]) == []
''')
_test(ORD, P, '''
@pytest.mark.parametrize("line", [(1, 2), (3, 4)])
def test_unpack_line(line):
    from shop.orders import unpack_line
    assert unpack_line(line) > 0
''')
_test(ORD, P, '''
def test_growth():
    from shop.orders import growth
    assert growth(2) > 1
''')
_test(ORD, P, '''
@pytest.mark.parametrize("line", [{"qty": 1}, {"qty": 5}])
def test_line_qty(line):
    from shop.orders import line_qty
    assert line_qty(line) == line["qty"]
''')
_test(ORD, T, '''
def test_expected_total_computation():
    lines = []
    expected = sum(lines) / len(lines)
    assert expected == 0
''')
_test(CAT, T, '''
def test_calls_a_number():
    count = 3
    assert count() == 3
''')
_test(NET, E, '''
def test_broken_pipe():
    import socket
    a, b = socket.socketpair()
    b.close()
    for _ in range(100):
        a.sendall(b"x" * 65536)
''')
_test(NET, E, '''
def test_bad_gateway_requests(http_url):
    import requests
    requests.get(f"{http_url}/502", timeout=3).raise_for_status()
''')
_test(SYNC, TO, '''
def test_worker_wait():
    import threading
    done = threading.Event()
    assert done.wait(0.2), "timed out waiting for the worker"
''')
_test(USR, A, '''
def test_expired_session():
    class TokenExpiredError(Exception):
        pass
    raise TokenExpiredError("session token for ann is no longer valid")
''')
_test(USR, D, '''
def test_insert_without_name(db):
    db.execute("INSERT INTO users (id, name) VALUES (9, NULL)")
''')
_test(CFG, D, '''
def test_stock_xml():
    import pathlib
    import xml.etree.ElementTree as ET
    assert ET.parse(pathlib.Path(__file__).parent / "data" / "stock.xml")
''')
_test(CFG, D, '''
def test_names_file():
    import pathlib
    assert (pathlib.Path(__file__).parent / "data" / "names.txt").read_text(encoding="ascii")
''')
_test(CFG, DEP, '''
def test_optional_writer():
    import tomli_w  # noqa: F401
''')
_test(CFG, DEP, '''
def test_legacy_version():
    from packaging.version import LegacyVersion  # noqa: F401
''')
_test(CFG, DEP, '''
def test_json_loads_encoding():
    import json
    assert json.loads("{}", encoding="utf-8") == {}
''')

_test(ORD, P, '''
@pytest.mark.parametrize("part,whole", [(1, 0), (0, 0), (5, 0)])
def test_ratio(part, whole):
    from shop.orders import ratio
    assert ratio(part, whole) >= 0
''')
_test(ORD, P, '''
@pytest.mark.parametrize("amount", [1.5, 0.1, 19.99])
def test_to_cents_is_whole(amount):
    from shop.orders import to_cents
    assert isinstance(to_cents(amount), int)
''')
_test(ORD, T, '''
@pytest.mark.parametrize("qty", ["3", "4"])
def test_quantity_sum_in_test(qty):
    total = qty + 4
    assert total == 7
''')

# --- flaky: fail in some runs only
_test(SYNC, F, '''
@pytest.mark.parametrize("worker", range(18))
def test_random_race(worker):
    import random
    assert random.random() > 0.3, "worker lost the race"
''')
_test(SYNC, F, '''
@pytest.mark.parametrize("attempt", range(10))
def test_clock_sensitive(attempt):
    import time
    assert int(time.time() * 1000) % 4 != 0
''')
_test(SYNC, F, '''
@pytest.mark.parametrize("n", range(10))
def test_port_race(closed_port, n):
    import random, socket
    if random.random() < 0.3:
        socket.create_connection(("127.0.0.1", closed_port), timeout=1)
''')
_test(SYNC, F, '''
@pytest.mark.parametrize("n", range(8))
def test_thread_race(n):
    import random, threading
    seen = []
    threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(4) if random.random() > 0.07]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4, f"only {len(seen)} of 4 workers reported"
''')
_test(SYNC, F, '''
@pytest.mark.parametrize("n", range(10))
def test_slow_sometimes(n):
    import random, time
    if random.random() < 0.3:
        raise TimeoutError("queue did not drain in time")
''')
