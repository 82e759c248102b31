"""argon2-cffi's side of the benchmark's figure 12 (bench/src/kernels.rs runs this with -c).

  vectors   one JSON line per hash that argon2-cffi made (PasswordHasher, PHC strings, fresh
            random passwords and salts) with the inputs and the raw tag, then the RFC 9106
            §5.3 argon2id tag computed by argon2-cffi's C library (with secret and associated
            data, through its low-level context API)
  rate M T P SECONDS MAX
            hashes at m=M KiB, t=T, p=P in a loop for SECONDS (at most MAX), after one
            untimed warm-up; prints {"hashes", "seconds"}. The caller starts one per core.
"""
import importlib.metadata
import json
import os
import sys
import time

import argon2
from argon2.low_level import ARGON2_VERSION, Type, ffi, hash_secret_raw, lib


def b64decode(s):
    import base64

    return base64.b64decode(s + "=" * (-len(s) % 4))


def vectors():
    for m, t, p in ((64, 1, 1), (256, 2, 2), (19456, 2, 1)):
        for _ in range(2):
            password = os.urandom(12).hex().encode()
            hasher = argon2.PasswordHasher(
                time_cost=t, memory_cost=m, parallelism=p, hash_len=32, salt_len=16,
                type=Type.ID,
            )
            phc = hasher.hash(password)
            salt, tag = phc.split("$")[-2:]
            print(json.dumps({
                "phc": phc, "m": m, "t": t, "p": p, "password": password.hex(),
                "salt": b64decode(salt).hex(), "tag": b64decode(tag).hex(),
            }))
    # RFC 9106 §5.3 through the C context (argon2-cffi's high-level API has no secret or ad).
    keep = [ffi.new("uint8_t[]", bytes([v]) * n) for v, n in ((1, 32), (2, 16), (3, 8), (4, 12))]
    out = ffi.new("uint8_t[]", 32)
    ctx = ffi.new("argon2_context *", dict(
        out=out, outlen=32, pwd=keep[0], pwdlen=32, salt=keep[1], saltlen=16,
        secret=keep[2], secretlen=8, ad=keep[3], adlen=12, t_cost=3, m_cost=32, lanes=4,
        threads=4, version=ARGON2_VERSION, allocate_cbk=ffi.NULL, free_cbk=ffi.NULL,
        flags=lib.ARGON2_DEFAULT_FLAGS,
    ))
    rc = lib.argon2_ctx(ctx, lib.Argon2_id)
    print(json.dumps({"rfc9106": bytes(ffi.buffer(out, 32)).hex(), "rc": rc,
                      "version": importlib.metadata.version("argon2-cffi")}))


def rate(m, t, p, seconds, most):
    salt = os.urandom(16)
    password = b"Bench-Kestrel-7391!"
    hash_secret_raw(password, salt, t, m, p, 32, Type.ID)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < most and time.perf_counter() < deadline:
        hash_secret_raw(password, salt, t, m, p, 32, Type.ID)
        n += 1
    print(json.dumps({"hashes": n, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    if sys.argv[1] == "vectors":
        vectors()
    else:
        rate(*(int(a) for a in sys.argv[2:5]), float(sys.argv[5]), int(sys.argv[6]))
