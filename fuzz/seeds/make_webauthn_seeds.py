#!/usr/bin/env python3
"""Writes the seed inputs of the `webauthn` fuzz target (fuzz/fuzz_targets/webauthn.rs).

Run from anywhere: python3 fuzz/seeds/make_webauthn_seeds.py. The seeds are committed; the
target also reads `registration` at start-up to register the passkey its assertions name, so a
seed that no longer verifies fails the run at once instead of silently fuzzing nothing.

Input layout (the target's): one mode byte, then parts separated by SEP.
  mode 0: the whole rest is a browser's JSON answer, handed to every ceremony;
  mode 1: clientDataJSON, attestationObject, rawId         -> a registration answer;
  mode 2: clientDataJSON, authenticatorData, signature,
          userHandle, rawId                                -> an assertion answer.
The challenge is fixed (32 zero bytes) in the target's states, so the fuzzer can reach the
checks after the challenge comparison; the origin is the one the target's relying party uses.
"""
import base64
import hashlib
import json
import os

SEP = b"|#|"
ORIGIN = "http://localhost:8080"
RP_ID = "localhost"
CHALLENGE = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
CRED_ID = bytes(range(1, 17))
USER_HANDLE = bytes([1] * 16)

# The P-256 base point G: a valid public key (its private key is 1, which nobody signs with
# here; the target asserts that no assertion ever verifies).
GX = bytes.fromhex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296")
GY = bytes.fromhex("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5")


def cbor_bytes(b):
    n = len(b)
    if n < 24:
        return bytes([0x40 + n]) + b
    if n < 256:
        return bytes([0x58, n]) + b
    return bytes([0x59]) + n.to_bytes(2, "big") + b


def cbor_text(s):
    b = s.encode()
    assert len(b) < 24
    return bytes([0x60 + len(b)]) + b


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cose_es256():
    # {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}
    return (bytes([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]) + cbor_bytes(GX)
            + bytes([0x22]) + cbor_bytes(GY))


def registration():
    client = json.dumps({"type": "webauthn.create", "challenge": CHALLENGE,
                         "origin": ORIGIN, "crossOrigin": False}).encode()
    rp_hash = hashlib.sha256(RP_ID.encode()).digest()
    flags = 0x01 | 0x04 | 0x40  # user present, user verified, attested credential data
    auth = (rp_hash + bytes([flags]) + (0).to_bytes(4, "big") + bytes(16)
            + len(CRED_ID).to_bytes(2, "big") + CRED_ID + cose_es256())
    att = (bytes([0xA3]) + cbor_text("fmt") + cbor_text("none") + cbor_text("attStmt")
           + bytes([0xA0]) + cbor_text("authData") + cbor_bytes(auth))
    return client, att, CRED_ID


def assertion():
    client = json.dumps({"type": "webauthn.get", "challenge": CHALLENGE,
                         "origin": ORIGIN, "crossOrigin": False}).encode()
    rp_hash = hashlib.sha256(RP_ID.encode()).digest()
    auth = rp_hash + bytes([0x05]) + (1).to_bytes(4, "big")
    # A well-formed DER ECDSA signature that does not verify.
    r = bytes([0x11] * 32)
    s = bytes([0x22] * 32)
    sig = bytes([0x30, 0x44, 0x02, 0x20]) + r + bytes([0x02, 0x20]) + s
    return client, auth, sig, USER_HANDLE, CRED_ID


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webauthn")
    os.makedirs(out, exist_ok=True)
    reg = registration()
    ass = assertion()
    seeds = {
        "registration": bytes([1]) + SEP.join(reg),
        "assertion": bytes([2]) + SEP.join(ass),
        "registration-json": bytes([0]) + json.dumps({
            "id": b64u(reg[2]), "rawId": b64u(reg[2]), "type": "public-key",
            "response": {"clientDataJSON": b64u(reg[0]), "attestationObject": b64u(reg[1])},
            "extensions": {}}).encode(),
        "assertion-json": bytes([0]) + json.dumps({
            "id": b64u(ass[4]), "rawId": b64u(ass[4]), "type": "public-key",
            "response": {"clientDataJSON": b64u(ass[0]), "authenticatorData": b64u(ass[1]),
                         "signature": b64u(ass[2]), "userHandle": b64u(ass[3])},
            "extensions": {}}).encode(),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
