#!/usr/bin/env python3
"""What the registry's random unique index costs SQLite alone (docs/benchmarks.md, figure 10).

Loads 1,000,000 rows shaped like `registry_records` (same columns, the `key_id` index) into a
fresh WAL-mode file, in sorted transactions, with Python's own sqlite3 module and nothing of
Portcullis around it, and prints the time and the write-ahead log written, for:

  blob32      the registry as it is: a UNIQUE 32-byte keyed hash (random), 10,000 rows a load
  blob32x2    the same, 20,000 rows a load (two pushes in one transaction)
  int64       a UNIQUE random 64-bit integer instead of the 32-byte hash
  sequential  a UNIQUE 32-byte key that grows with every row (appends, no random inserts)
  none        no unique index at all

Usage: python3 bench/sqlite/index_cost.py [MODE ...]   (all modes when none is named)
       PAGE_SIZE=1024 python3 bench/sqlite/index_cost.py blob32   (the file's page size; 4096 unset)
"""
import os
import sqlite3
import sys
import tempfile
import time

ROWS = 1_000_000
PAGE_SIZE = int(os.environ.get("PAGE_SIZE", "4096"))
COLUMNS = (
    "account_type, number_hash, verification_hash, last4, expiry, holder_name, email, phone, "
    "product, balance, credit_limit, payment_due_date, minimum_due, status, key_id, status_since"
)
VALUES = (
    "'personal', ?, randomblob(32), '1234', '12/29', 'JANE Q CARDHOLDER', "
    "'jane.q@example.com', '+15555550100', 'Platinum Card', 123456, 1000000, '2027-01-05', "
    "3500, 'active', 1, 1700000000"
)


def run(mode):
    per_load = 20_000 if mode == "blob32x2" else 10_000
    key_column = {
        "int64": "number_hash INTEGER NOT NULL UNIQUE",
        "none": "number_hash BLOB NOT NULL",
    }.get(mode, "number_hash BLOB NOT NULL UNIQUE")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "registry.db")
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            f"page_size = {PAGE_SIZE}",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "wal_autocheckpoint = 0",
            "cache_size = -262144",
        ):
            db.execute("PRAGMA " + pragma)
        db.execute(
            "CREATE TABLE registry_records (id INTEGER PRIMARY KEY, account_type TEXT NOT NULL, "
            f"{key_column}, verification_hash BLOB NOT NULL, last4 TEXT, expiry TEXT, "
            "holder_name TEXT, email TEXT, phone TEXT, product TEXT, balance INT, "
            "credit_limit INT, payment_due_date TEXT, minimum_due INT, status TEXT, "
            "replaces_hash BLOB, key_id INT, status_since INT, changed_in INT, reissued_in INT)"
        )
        db.execute("CREATE INDEX registry_records_key_id ON registry_records (key_id)")
        insert = f"INSERT INTO registry_records ({COLUMNS}) VALUES ({VALUES})"
        wal = path + "-wal"
        start = time.perf_counter()
        loads = ROWS // per_load
        first = last = 0
        for load in range(loads):
            if mode == "int64":
                keys = [int.from_bytes(os.urandom(8), "big") >> 1 for _ in range(per_load)]
            elif mode == "sequential":
                keys = [(load * per_load + i).to_bytes(32, "big") for i in range(per_load)]
            else:
                keys = [os.urandom(32) for _ in range(per_load)]
            keys.sort()
            before = os.path.getsize(wal) if os.path.exists(wal) else 0
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, ((k,) for k in keys))
            db.execute("COMMIT")
            grown = os.path.getsize(wal) - before
            if load == 0:
                first = grown
            last = grown
        seconds = time.perf_counter() - start
        written = os.path.getsize(wal)
        db.close()
    print(
        f"{mode:<11} {ROWS:,} rows, {per_load:,} a load: {seconds:5.1f} s "
        f"({ROWS / seconds:,.0f} rows/s), write-ahead log {written / 1e9:.2f} GB "
        f"(first load {first / 1e6:.1f} MB, last {last / 1e6:.1f} MB)"
    )


def main():
    modes = sys.argv[1:] or ["blob32", "blob32x2", "int64", "sequential", "none"]
    print(f"SQLite {sqlite3.sqlite_version}, page size {PAGE_SIZE}, one thread, Python's sqlite3")
    for mode in modes:
        run(mode)


if __name__ == "__main__":
    main()
