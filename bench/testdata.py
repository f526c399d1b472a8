"""Benchmark: test data generation + loading into PostgreSQL, against the naive way, in one process.

    uv run python bench/testdata.py                     # 1,000,000 rows (users + orders with a FK)
    uv run python bench/testdata.py --rows 100000       # smaller scale
    uv run python bench/testdata.py --url postgresql://postgres@127.0.0.1:5432/test --repeat 3

Figures:
  1. the suite seed with 1,000 entities (users + payment methods): generate + load + drop, seconds;
  2. ROWS rows: generate + load (COPY) end to end, rows/s (teardown reported apart);
  3. the naive way, a Faker call per field then SQLAlchemy ORM inserts, on --naive-rows rows; its rows/s
     is extrapolated to ROWS (running it on a million rows would take many minutes), and the ratio printed.
Medians over --repeat runs (1,000-entity and naive runs repeat at least 3 times).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa
from faker import Faker
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from testpilot.testdata import DatasetConfig, drop_run_data, generate, load, namespace_name, pools
from testpilot.testdata.namespaces import engine_url

ORDER_STATUS = ["paid", "refunded", "pending"]


def entity_datasets(users: int) -> dict[str, DatasetConfig]:
    return {
        "users": DatasetConfig(count=users, seed=1, schema={
            "id": "uuid", "name": "name", "email": "email unique", "created_at": "timestamp"}),
        "payment_methods": DatasetConfig(seed=1, schema={
            "id": "uuid", "user_id": "ref:users.id per_parent=0-2",
            "type": "enum:credit_card,paypal,bank_transfer", "details": "json"}),
    }


def order_datasets(rows: int) -> dict[str, DatasetConfig]:
    # 1-7 orders per user (4 on average): users are a fifth of all rows.
    return {
        "users": DatasetConfig(count=rows // 5, seed=2, schema={
            "id": "uuid", "name": "name", "email": "email unique", "created_at": "timestamp"}),
        "orders": DatasetConfig(seed=2, schema={
            "id": "uuid", "user_id": "ref:users.id per_parent=1-7", "amount": "decimal:1..500",
            "status": "enum:paid=8,refunded=1,pending=2", "created_at": "timestamp:2024-01-01..2024-12-31"}),
    }


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def ours(url: str, datasets: dict[str, DatasetConfig]) -> dict[str, float]:
    run = str(uuid.uuid4())
    pools.clear_cache()  # every run pays for its Faker pools, as a fresh process would
    gen_s, data = timed(lambda: generate(datasets))
    load_s, report = timed(lambda: load(url, data, run_id=run, label="bench"))  # type: ignore[arg-type]
    drop_s, _ = timed(lambda: drop_run_data(url, run))
    rows = sum(report.row_counts.values())  # type: ignore[attr-defined]
    return {"rows": rows, "generate": gen_s, "load": load_s, "total": gen_s + load_s, "drop": drop_s}


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"))
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    status: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[dt.datetime]
    user: Mapped[User] = relationship()


def naive(url: str, rows: int) -> dict[str, float]:
    """A Faker call per field, one ORM object per row, session.add_all + commit."""
    schema = namespace_name(str(uuid.uuid4()), "naive")
    engine = sa.create_engine(engine_url(url)).execution_options(schema_translate_map={None: schema})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {conn.dialect.identifier_preparer.quote_identifier(schema)}")
            Base.metadata.create_all(conn)
        start = time.perf_counter()
        fake = Faker("en_US")
        fake.seed_instance(3)
        objects: list[Base] = []
        made = 0
        while made < rows:
            user = User(id=fake.uuid4(), name=fake.name(), email=fake.unique.email(),
                        created_at=fake.date_time_between(dt.datetime(2020, 1, 1), dt.datetime(2025, 12, 31)))
            objects.append(user)
            made += 1
            for _ in range(fake.random_int(1, 7)):
                objects.append(Order(id=fake.uuid4(), user=user,
                                     amount=fake.pydecimal(left_digits=3, right_digits=2, positive=True),
                                     status=fake.random_element(ORDER_STATUS),
                                     created_at=fake.date_time_between(dt.datetime(2024, 1, 1),
                                                                       dt.datetime(2024, 12, 31))))
                made += 1
        gen_s = time.perf_counter() - start
        with Session(engine) as session:
            session.add_all(objects)
            session.commit()
        total = time.perf_counter() - start
        return {"rows": len(objects), "generate": gen_s, "load": total - gen_s, "total": total}
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"DROP SCHEMA IF EXISTS {conn.dialect.identifier_preparer.quote_identifier(schema)} CASCADE")
        engine.dispose()


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the big run (users + orders)")
    parser.add_argument("--naive-rows", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1, help="repeats of the big run")
    args = parser.parse_args()

    entities = [ours(args.url, entity_datasets(1000)) for _ in range(max(3, args.repeat))]
    big = [ours(args.url, order_datasets(args.rows)) for _ in range(args.repeat)]
    slow = [naive(args.url, args.naive_rows) for _ in range(max(3, args.repeat))]

    big_rows = median(big, "rows")
    ours_rate = big_rows / median(big, "total")
    naive_rate = median(slow, "rows") / median(slow, "total")
    print(f"1,000 entities (1000 users + {int(median(entities, 'rows')) - 1000} payment methods), "
          f"generate+load: {median(entities, 'total'):.2f} s (target < 60 s)")
    print(f"{int(big_rows):,} rows (users + orders, FK), PostgreSQL COPY, median of {args.repeat}:")
    print(f"  generate {median(big, 'generate'):.2f} s, load {median(big, 'load'):.2f} s, "
          f"end to end {median(big, 'total'):.2f} s = {ours_rate:,.0f} rows/s (target >= 20,000); "
          f"drop at teardown {median(big, 'drop'):.2f} s")
    print(f"naive (Faker call per field + ORM inserts), {int(median(slow, 'rows')):,} rows, median of {len(slow)}:")
    print(f"  generate {median(slow, 'generate'):.2f} s, load {median(slow, 'load'):.2f} s, "
          f"{naive_rate:,.0f} rows/s -> extrapolated {big_rows / naive_rate:,.0f} s for {int(big_rows):,} rows")
    print(f"side by side: ours {ours_rate:,.0f} rows/s vs naive {naive_rate:,.0f} rows/s = "
          f"{ours_rate / naive_rate:.1f}x faster")


if __name__ == "__main__":
    main()
