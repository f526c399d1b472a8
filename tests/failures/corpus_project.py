"""Source of the deliberately broken project that ``make_corpus.py`` runs to collect real failures.

Each test module's name says what its tests are meant to show; ``EXPECTED`` maps it to the category a
person triaging the failure would give. Labels follow the intent of the broken code, not the categoriser.
"""

from __future__ import annotations

EXPECTED = {
    "test_product": "product_bug",
    "test_testbug": "test_bug",
    "test_testbug_syntax": "test_bug",
    "test_env": "environment",
    "test_timeout": "timeout",
    "test_data": "test_data",
    "test_dep": "dependency",
    "test_dep_collect": "dependency",
    "test_dep_collect2": "dependency",
    "test_auth": "authentication",
    "test_flaky": "flaky",
}

# A missing fixture file is test data, not a test bug (issue 13: data problems outside a database).
OVERRIDES = {"tests/test_testbug.py::test_reads_missing_fixture_file": "test_data"}

FILES: dict[str, str] = {}

FILES["shop/__init__.py"] = ""

FILES["shop/pricing.py"] = '''
def total(prices, discount=0.0):
    subtotal = sum(prices)
    # bug: discount applied twice
    return round(subtotal * (1 - discount) * (1 - discount), 2)


def average(prices):
    return sum(prices) / len(prices)


def vat(amount, country):
    rates = {"DE": 0.19, "FR": 0.20}
    return round(amount * rates[country], 2)


def parse_price(text):
    return float(text.replace(",", "."))
'''

FILES["shop/cart.py"] = '''
class Cart:
    def __init__(self):
        self.lines = {}

    def add(self, sku, qty):
        assert qty > 0, f"quantity must be positive, got {qty}"
        self.lines[sku] = self.lines.get(sku, 0) + qty

    def remove(self, sku):
        self.lines[sku] -= 1  # bug: KeyError for unknown sku

    def count(self):
        return len(self.lines)  # bug: lines, not items


def merge(a, b):
    out = Cart()
    for sku, qty in a.lines.items() + b.lines.items():  # bug: dict views do not add
        out.add(sku, qty)
    return out
'''

FILES["shop/orders.py"] = '''
def find_customer(customers, customer_id):
    for c in customers:
        if c["id"] == customer_id:
            return c
    return None


def shipping_label(customers, customer_id):
    customer = find_customer(customers, customer_id)
    return customer["name"].upper() + "\\n" + customer["city"]


def validate_quantity(qty):
    if qty < 0:
        raise ValueError(f"negative quantity {qty}")
    return qty
'''

FILES["shop/auth.py"] = '''
import hashlib
import hmac
import time


class AuthError(Exception):
    pass


SECRET = b"corpus-signing-key"


def sign(user, expires):
    payload = f"{user}:{expires}"
    mac = hmac.new(SECRET, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}:{mac}"


def verify(token, now=None):
    user, expires, mac = token.rsplit(":", 2)
    good = hmac.new(SECRET, f"{user}:{expires}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, good):
        raise AuthError(f"Invalid token signature for user {user!r}")
    if float(expires) < (now or time.time()):
        raise AuthError(f"Token has expired at {expires} for user {user!r}")
    return user
'''

FILES["shop/compat.py"] = '''
from importlib.metadata import version

from packaging.specifiers import SpecifierSet


def require(package, spec):
    have = version(package)
    if have not in SpecifierSet(spec):
        raise ImportError(f"shop requires {package}{spec} but {have} is installed")
    return have
'''

FILES["conftest.py"] = '''
import http.server
import os
import socket
import struct
import threading
import time

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/401": 401, "/403": 403, "/503": 503, "/500": 500}.get(self.path.split("?")[0], 200)
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        try:
            self.wfile.write(b"{}")
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _serve(kind):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    held = []

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if kind == "close":
                conn.close()
            elif kind == "rst":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif kind == "garbage":
                conn.sendall(b"HELLO not ssh\\r\\n")
                conn.close()
            else:
                held.append(conn)  # silent: accept and never answer

    threading.Thread(target=loop, daemon=True).start()
    return listener


@pytest.fixture(scope="session")
def silent_port():
    listener = _serve("silent")
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="session")
def closing_port():
    listener = _serve("close")
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="session")
def rst_port():
    listener = _serve("rst")
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="session")
def garbage_port():
    listener = _serve("garbage")
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def service_up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def state_dir():
    return os.environ["CORPUS_STATE"]
'''

FILES["tests/__init__.py"] = ""

FILES["tests/test_product.py"] = '''
import pytest
import requests

from shop import cart, orders, pricing


@pytest.mark.parametrize("prices,discount,expected", [
    ([10.0, 20.0], 0.1, 27.0), ([5.5, 4.5], 0.2, 8.0), ([100.0], 0.25, 75.0), ([1.0, 2.0, 3.0], 0.5, 3.0),
    ([19.99, 5.01], 0.1, 22.5), ([250.0, 50.0], 0.15, 255.0), ([12.0], 0.3, 8.4), ([40.0, 60.0], 0.05, 95.0),
])
def test_total_with_discount(prices, discount, expected):
    assert pricing.total(prices, discount) == expected


@pytest.mark.parametrize("qty", [0, -1, -5, -12])
def test_cart_accepts_quantity(qty):
    c = cart.Cart()
    c.add("SKU-1", qty)
    assert c.lines["SKU-1"] == qty


@pytest.mark.parametrize("skus", [["a", "a"], ["b", "b", "b"], ["c", "d", "c"]])
def test_cart_counts_items(skus):
    c = cart.Cart()
    for sku in skus:
        c.add(sku, 1)
    assert c.count() == len(skus)


@pytest.mark.parametrize("sku", ["SKU-404", "SKU-999"])
def test_remove_unknown_sku_is_noop(sku):
    c = cart.Cart()
    c.remove(sku)
    assert c.count() == 0


def test_merge_carts():
    a, b = cart.Cart(), cart.Cart()
    a.add("x", 1)
    b.add("y", 2)
    assert cart.merge(a, b).count() == 2


def test_average_of_empty_order_is_zero():
    assert pricing.average([]) == 0


@pytest.mark.parametrize("country", ["AT", "IT", "NL"])
def test_vat_for_country(country):
    assert pricing.vat(100, country) > 0


@pytest.mark.parametrize("cid", [7, 42])
def test_shipping_label_for_unknown_customer(cid):
    customers = [{"id": 1, "name": "Ada", "city": "Berlin"}]
    assert orders.shipping_label(customers, cid) == ""


@pytest.mark.parametrize("qty", [-1, -3])
def test_negative_quantity_is_clamped(qty):
    assert orders.validate_quantity(qty) == 0


@pytest.mark.parametrize("text", ["12.50", "7,25", "3.99"])
def test_parse_price_rejects_garbage(text):
    with pytest.raises(ValueError):
        pricing.parse_price(text)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_price_list_endpoint(http_url, n):
    r = requests.get(f"{http_url}/500?page={n}", timeout=5)
    r.raise_for_status()


def test_rounding_of_discount():
    assert pricing.total([0.1, 0.2], 0.0) == pytest.approx(0.3, abs=1e-9) and pricing.total([33.33], 0.1) == 30.0
'''

FILES["tests/test_testbug.py"] = '''
import json
import os

import pytest

from shop import pricing


@pytest.fixture
def broken_settings():
    settings = {"currency": "EUR"}
    return settings["region"]


@pytest.fixture
def leaky_resource():
    yield {"open": True}
    raise RuntimeError("teardown: resource was already closed by the test")


@pytest.fixture
def catalogue_file():
    with open(os.path.join("tests", "data", "catalogue.json")) as fh:
        return json.load(fh)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_total_typo(n):
    assert pricing.total([n]) == totl  # noqa: F821


@pytest.mark.parametrize("n", [1, 2])
def test_uses_helper_wrongly(n):
    assert pricing.vat(100) == 19


def test_calls_missing_method():
    prices = [1, 2]
    assert prices.sum() == 3


def test_attribute_of_none():
    config = None
    assert config.currency == "EUR"


@pytest.mark.parametrize("n", [1, 2])
def test_setup_fails(broken_settings, n):
    assert broken_settings


@pytest.mark.parametrize("n", [1, 2])
def test_teardown_fails(leaky_resource, n):
    assert leaky_resource["open"]


@pytest.mark.parametrize("n", [1, 2])
def test_needs_unknown_fixture(db_sessoin, n):
    assert db_sessoin


def test_reads_missing_fixture_file(catalogue_file):
    assert catalogue_file


def test_loads_bad_literal():
    expected = json.loads("{'sku': 1}")
    assert expected


def test_indexes_empty_list():
    cases = []
    first = cases[0]
    assert first


def test_unpacks_wrongly():
    a, b = (1, 2, 3)
    assert a


def test_wrong_type_concat():
    label = "total: " + pricing.total([1.0])
    assert label
'''

FILES["tests/test_testbug_syntax.py"] = '''
def test_broken_syntax(:
    assert True
'''

FILES["tests/test_env.py"] = '''
import http.client
import socket
import urllib.request

import paramiko
import psycopg
import pymysql
import pytest
import requests
import sqlalchemy


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_socket_refused(closed_port, attempt):
    socket.create_connection(("127.0.0.1", closed_port), timeout=2)


@pytest.mark.parametrize("path", ["/health", "/api/orders"])
def test_urllib_refused(closed_port, path):
    urllib.request.urlopen(f"http://127.0.0.1:{closed_port}{path}", timeout=2)


@pytest.mark.parametrize("path", ["/", "/status"])
def test_http_client_refused(closed_port, path):
    conn = http.client.HTTPConnection("127.0.0.1", closed_port, timeout=2)
    conn.request("GET", path)


@pytest.mark.parametrize("path", ["/orders", "/stock", "/users/7"])
def test_requests_refused(closed_port, path):
    requests.get(f"http://127.0.0.1:{closed_port}{path}", timeout=2)


@pytest.mark.parametrize("db", ["shop", "billing"])
def test_postgres_refused(closed_port, db):
    psycopg.connect(host="127.0.0.1", port=closed_port, dbname=db, connect_timeout=2)


@pytest.mark.parametrize("db", ["shop", "billing"])
def test_mysql_refused(closed_port, db):
    pymysql.connect(host="127.0.0.1", port=closed_port, user="root", database=db, connect_timeout=2)


@pytest.mark.parametrize("db", ["shop", "inventory"])
def test_sqlalchemy_refused(closed_port, db):
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://app@127.0.0.1:{closed_port}/{db}")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("select 1"))


@pytest.mark.parametrize("user", ["deploy", "ci"])
def test_ssh_refused(closed_port, user):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=closed_port, username=user, password="x", timeout=2,
                   allow_agent=False, look_for_keys=False)


@pytest.mark.parametrize("host", ["db.shop.invalid", "cache-7.invalid"])
def test_dns_getaddrinfo(host):
    socket.getaddrinfo(host, 5432)


@pytest.mark.parametrize("host", ["api.shop.invalid", "payments-3.invalid"])
def test_dns_requests(host):
    requests.get(f"http://{host}/health", timeout=2)


@pytest.mark.parametrize("host", ["stock.invalid", "search-2.invalid"])
def test_dns_urllib(host):
    urllib.request.urlopen(f"http://{host}/", timeout=2)


def test_dns_postgres():
    psycopg.connect(host="primary.db.invalid", dbname="shop", connect_timeout=2)


def test_dns_ssh():
    client = paramiko.SSHClient()
    client.connect("runner-12.invalid", username="ci", password="x", timeout=2)


@pytest.mark.parametrize("user", ["deploy", "ci", "ops"])
def test_ssh_connection_dropped(closing_port, user):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=closing_port, username=user, password="x", timeout=2,
                   banner_timeout=2, allow_agent=False, look_for_keys=False)


@pytest.mark.parametrize("user", ["deploy", "ci"])
def test_ssh_bad_banner(garbage_port, user):
    transport = paramiko.Transport(("127.0.0.1", garbage_port))
    transport.start_client(timeout=2)


@pytest.mark.parametrize("size", [64, 128])
def test_socket_reset(rst_port, size):
    s = socket.create_connection(("127.0.0.1", rst_port), timeout=2)
    s.recv(size)
    s.recv(size)


@pytest.mark.parametrize("path", ["/a", "/b"])
def test_requests_reset(rst_port, path):
    requests.get(f"http://127.0.0.1:{rst_port}{path}", timeout=2)


@pytest.mark.parametrize("path", ["/x", "/y"])
def test_http_remote_disconnected(closing_port, path):
    conn = http.client.HTTPConnection("127.0.0.1", closing_port, timeout=2)
    conn.request("GET", path)
    conn.getresponse()


@pytest.mark.parametrize("gib", [1 << 40, 1 << 41])
def test_out_of_memory(gib):
    buf = bytearray(gib * 1024 * 1024)
    assert buf


def test_out_of_memory_list():
    rows = [0] * (1 << 62)
    assert rows


@pytest.mark.parametrize("chunk", [1024, 4096, 65536])
def test_disk_full(chunk):
    with open("/dev/full", "wb") as fh:
        fh.write(b"x" * chunk)
        fh.flush()


def test_disk_full_text():
    with open("/dev/full", "w") as fh:
        print("report line", file=fh, flush=True)


@pytest.mark.parametrize("path", ["/503", "/503?retry=1"])
def test_service_unavailable(http_url, path):
    requests.get(f"{http_url}{path}", timeout=5).raise_for_status()
'''

FILES["tests/test_timeout.py"] = '''
import asyncio
import subprocess
import time
import urllib.request

import pymysql
import pytest
import requests


@pytest.mark.parametrize("size", [16, 32, 64])
def test_socket_read_timeout(silent_port, size):
    import socket
    s = socket.create_connection(("127.0.0.1", silent_port), timeout=0.2)
    s.recv(size)


@pytest.mark.parametrize("path", ["/slow", "/slow?page=2", "/slow?page=3"])
def test_requests_read_timeout(http_url, path):
    requests.get(f"{http_url}{path}", timeout=0.2)


@pytest.mark.parametrize("seconds", ["5", "7", "9"])
def test_subprocess_timeout(seconds):
    subprocess.run(["sleep", seconds], timeout=0.2, check=True)


@pytest.mark.parametrize("n", [1, 2])
def test_asyncio_wait_for(n):
    async def slow():
        await asyncio.sleep(5)

    async def main():
        await asyncio.wait_for(slow(), timeout=0.1 * n)

    asyncio.run(main())


@pytest.mark.timeout(0.5)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_hangs_forever(n):
    while True:
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/slow", "/slow?x=1"])
def test_urllib_timeout(http_url, path):
    urllib.request.urlopen(f"{http_url}{path}", timeout=0.2).read()


def test_mysql_connect_timeout(silent_port):
    pymysql.connect(host="127.0.0.1", port=silent_port, user="root", connect_timeout=0.3, read_timeout=0.3)
'''

FILES["tests/test_data.py"] = '''
import socket
import sqlite3

import psycopg
import pymysql
import pytest
import sqlalchemy
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"
    id = Column(Integer, primary_key=True)
    email = Column(String, unique=True, nullable=False)


class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)


def _sqlite():
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript("""
        create table customers (id integer primary key, email text unique not null,
                                age integer check (age >= 0));
        create table orders (id integer primary key, customer_id integer not null references customers(id));
    """)
    return db


@pytest.fixture
def seeded_db():
    db = _sqlite()
    rows = [(1, "ada@example.com", 36), (2, "bob@example.com", 41), (3, "ada@example.com", 29)]
    db.executemany("insert into customers values (?, ?, ?)", rows)
    return db


def _up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("email", ["ada@example.com", "bob@example.com", "eve@example.com"])
def test_sqlite_unique(email):
    db = _sqlite()
    db.execute("insert into customers (email) values (?)", (email,))
    db.execute("insert into customers (email) values (?)", (email,))


@pytest.mark.parametrize("age", [30, 40])
def test_sqlite_not_null(age):
    _sqlite().execute("insert into customers (email, age) values (null, ?)", (age,))


@pytest.mark.parametrize("cid", [99, 123])
def test_sqlite_foreign_key(cid):
    _sqlite().execute("insert into orders (customer_id) values (?)", (cid,))


@pytest.mark.parametrize("age", [-1, -30])
def test_sqlite_check(age):
    _sqlite().execute("insert into customers (email, age) values ('x@example.com', ?)", (age,))


@pytest.mark.parametrize("email", ["c1@example.com", "c2@example.com", "c3@example.com"])
def test_sqlalchemy_unique(email):
    engine = sqlalchemy.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Customer(email=email), Customer(email=email)])
        s.commit()


@pytest.mark.parametrize("table", ["invoices", "refunds"])
def test_missing_table(table):
    _sqlite().execute(f"select count(*) from {table}")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_uses_seeded_customers(seeded_db, n):
    assert seeded_db.execute("select count(*) from customers").fetchone()[0] == 3


@pytest.mark.parametrize("email", ["pg1@example.com", "pg2@example.com"])
def test_postgres_unique(email):
    if not _up(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    with psycopg.connect(host="127.0.0.1", dbname="test", user="postgres") as conn:
        conn.execute("create temp table customers (email text unique)")
        conn.execute("insert into customers values (%s)", (email,))
        conn.execute("insert into customers values (%s)", (email,))


def test_postgres_not_null():
    if not _up(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    with psycopg.connect(host="127.0.0.1", dbname="test", user="postgres") as conn:
        conn.execute("create temp table orders (id int not null, customer_id int not null)")
        conn.execute("insert into orders (id) values (1)")


@pytest.mark.parametrize("sku", ["A-1", "B-2"])
def test_mysql_duplicate(sku):
    if not _up(3306):
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    conn = pymysql.connect(host="127.0.0.1", user="root")
    with conn.cursor() as cur:
        cur.execute("create database if not exists corpus")
        cur.execute("create temporary table corpus.stock (sku varchar(20) primary key)")
        cur.execute("insert into corpus.stock values (%s)", (sku,))
        cur.execute("insert into corpus.stock values (%s)", (sku,))
'''

FILES["tests/test_dep.py"] = '''
import importlib
from importlib.metadata import version

import pytest

from shop import compat


@pytest.mark.parametrize("name", ["stripe_sdk", "shop_plugins.tax", "redis_cluster"])
def test_optional_backend(name):
    importlib.import_module(name)


def test_import_renamed_name():
    from json import loads_strict  # noqa: F401


def test_import_removed_helper():
    from sqlalchemy.orm import mapper_registry  # noqa: F401


@pytest.mark.parametrize("dist", ["shop-payments", "acme-sdk"])
def test_installed_version(dist):
    assert version(dist)


@pytest.mark.parametrize("package,spec", [("pydantic", "<2"), ("sqlalchemy", "<1.4"), ("requests", ">=3")])
def test_compatible_versions(package, spec):
    compat.require(package, spec)
'''

FILES["tests/test_dep_collect.py"] = '''
import shop_legacy_api

def test_legacy():
    assert shop_legacy_api
'''

FILES["tests/test_dep_collect2.py"] = '''
import boto3_s3_transfer_missing

def test_upload():
    assert boto3_s3_transfer_missing
'''

FILES["tests/test_auth.py"] = '''
import socket
import time
import urllib.request

import pymysql
import pytest
import requests

from shop import auth


@pytest.mark.parametrize("path", ["/401", "/401?user=ada", "/401?user=bob"])
def test_api_requires_token(http_url, path):
    requests.get(f"{http_url}{path}", headers={"Authorization": "Bearer expired"}, timeout=5).raise_for_status()


@pytest.mark.parametrize("path", ["/403", "/403?scope=admin"])
def test_admin_scope(http_url, path):
    requests.get(f"{http_url}{path}", timeout=5).raise_for_status()


@pytest.mark.parametrize("path", ["/401", "/401?v=2"])
def test_urllib_auth(http_url, path):
    urllib.request.urlopen(f"{http_url}{path}", timeout=5)


@pytest.mark.parametrize("user", ["root", "shop_app"])
def test_mysql_wrong_password(user):
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=0.5).close()
    except OSError:
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    pymysql.connect(host="127.0.0.1", user=user, password="wrong-password-123")


@pytest.mark.parametrize("user", ["ada", "bob", "eve"])
def test_tampered_token(user):
    token = auth.sign(user, time.time() + 60)
    auth.verify(token[:-4] + "beef")


@pytest.mark.parametrize("user", ["ada", "bob"])
def test_expired_token(user):
    token = auth.sign(user, time.time() - 3600)
    assert auth.verify(token) == user
'''

FILES["tests/test_flaky.py"] = '''
import os
import random
import socket

import pytest

from shop import pricing


def _first_time(state_dir, name):
    marker = os.path.join(state_dir, name)
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True


@pytest.mark.parametrize("n", [1, 2, 3])
def test_race_on_counter(state_dir, n):
    seen = 0 if _first_time(state_dir, f"race{n}") else n
    assert seen == n


@pytest.mark.parametrize("n", [1, 2])
def test_order_dependent_total(state_dir, n):
    prices = [1.0, 2.0, 3.0]
    if _first_time(state_dir, f"order{n}"):
        prices = prices[:-1]
    assert pricing.total(prices) == 6.0


@pytest.mark.parametrize("n", [1, 2])
def test_port_reuse(state_dir, closed_port, n):
    if _first_time(state_dir, f"port{n}"):
        socket.create_connection(("127.0.0.1", closed_port), timeout=1)


@pytest.mark.parametrize("n", [1, 2])
def test_random_sample(state_dir, n):
    value = random.random() if _first_time(state_dir, f"rand{n}") else 1.0
    assert value >= 1.0


def test_cache_warmup(state_dir):
    cache = {} if _first_time(state_dir, "cache") else {"k": 1}
    assert cache["k"] == 1
'''
