#!/usr/bin/env python3
"""Checks the project's transparency-log proofs with code that is not the project's.

Only hashlib, base64, json and an Ed25519 implementation (the `cryptography`
package) are used; the algorithms are transcribed from RFC 9162 §2.1.3.2
(inclusion) and §2.1.4.2 (consistency), and the key and note formats from C2SP
signed-note and tlog-checkpoint.

Input: a JSON file with
  vkey            the office's note verifier key (name+hash+base64)
  checkpoint      a signed checkpoint note (text)
  inclusion       {"leaf_index", "tree_size", "leaf_data", "hashes"} (+ "event_id")
  more_inclusions more proofs of the same shape (optional)
  old_checkpoint  an earlier signed checkpoint (optional, with consistency)
  consistency     {"hashes"} from old_checkpoint's size to checkpoint's size

Exit status 0 and "OK" when everything verifies; 1 and the reason otherwise.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Failure(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).digest()


def node(left, right):
    return sha256(b"\x01" + left + right)


def parse_vkey(vkey):
    name, hexhash, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    if len(raw) != 33 or raw[0] != 1:
        raise Failure("not an Ed25519 verifier key")
    keyhash = sha256(name.encode() + b"\n" + raw)[:4]
    if keyhash.hex() != hexhash:
        raise Failure("the verifier key's hash does not match its name and key")
    return name, keyhash, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note, vkey):
    name, keyhash, public = parse_vkey(vkey)
    split = note.rindex("\n\n")
    text, signatures = note[: split + 1], note[split + 2 :]
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Failure("bad signature line")
        signer, sig = line[2:].split(" ", 1)
        sig = base64.b64decode(sig)
        if signer == name and sig[:4] == keyhash:
            try:
                public.verify(sig[4:], text.encode())
            except InvalidSignature:
                raise Failure("the checkpoint signature does not verify")
            verified = True
    if not verified:
        raise Failure("no signature by the office's key")
    origin, size, root = text.split("\n")[:3]
    if origin != name:
        raise Failure("the checkpoint's origin is not the key's name")
    return int(size), base64.b64decode(root)


def verify_inclusion(index, size, leaf_hash, path, root):
    if index >= size:
        raise Failure("leaf index beyond the tree")
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            raise Failure("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Failure("the inclusion proof does not lead to the signed root")


def verify_consistency(first, second, first_hash, second_hash, path):
    if first == second:
        if path or first_hash != second_hash:
            raise Failure("equal sizes need an empty proof and equal roots")
        return
    if first == 0 or first > second:
        raise Failure("bad tree sizes")
    if first & (first - 1) == 0:
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Failure("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != first_hash or sr != second_hash or sn != 0:
        raise Failure("the consistency proof does not join the two signed roots")


def check_leaf_data(data, event_id):
    """The leaf data is RFC 8785 canonical JSON of the envelope (for these values:
    keys sorted, no whitespace, UTF-8), and it is the event asked for."""
    value = json.loads(data)
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != data:
        raise Failure("the leaf data is not canonical JSON")
    if event_id is not None and value.get("event_id") != event_id:
        raise Failure("the leaf data is another event")


def main(path):
    doc = json.load(open(path, encoding="utf-8"))
    size, root = open_checkpoint(doc["checkpoint"], doc["vkey"])
    for inc in [doc["inclusion"]] + doc.get("more_inclusions", []):
        if inc["tree_size"] != size:
            raise Failure("the proof is for another tree size")
        data = base64.b64decode(inc["leaf_data"])
        check_leaf_data(data, inc.get("event_id"))
        path_hashes = [base64.b64decode(h) for h in inc["hashes"]]
        verify_inclusion(inc["leaf_index"], size, sha256(b"\x00" + data), path_hashes, root)
    if "old_checkpoint" in doc:
        old_size, old_root = open_checkpoint(doc["old_checkpoint"], doc["vkey"])
        proof = [base64.b64decode(h) for h in doc["consistency"]["hashes"]]
        verify_consistency(old_size, size, old_root, root, proof)
    print("OK")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (Failure, ValueError, KeyError) as e:
        print(f"FAILED: {e}")
        sys.exit(1)
