#!/usr/bin/env python3
"""Write the hostile-input corpus: one file per class, each exactly the
malformation it names, as Confluent-framed Avro bytes (hand-encoded, so no
Avro library can "fix" them).  MANIFEST lists class, file, key and the DLQ
code the scorer must give.  Rerun only to change the corpus:
    python3 tests/corpus/make_corpus.py tests/corpus
"""
import os
import struct
import sys


def zz(v):
    """Avro long: zig-zag then base-128 varint."""
    u = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return zz(len(b)) + b


def frame(schema_id):
    return b"\x00" + struct.pack(">i", schema_id)


TS = 1700000000000


def head(schema_id, event_id, lead, type_index, ts=TS):
    """A MarketingEvent in the shipped field order, up to `type`."""
    return (frame(schema_id) + s(event_id) + zz(ts) + s(lead) + zz(1) + s("A-D")
            + zz(type_index))


def tail(shared=(), attrs=(), source=None):
    """content_id, insight_id, content_stage, shared_with, source, attributes."""
    out = zz(1) + s("c-1") + zz(1) + s("I1") + zz(1) + zz(2)
    if shared:
        out += zz(len(shared)) + b"".join(s(x) for x in shared) + zz(0)
    else:
        out += zz(0)
    out += (zz(1) + s(source)) if source is not None else zz(0)
    if attrs:
        out += zz(len(attrs)) + b"".join(s(k) + s(v) for k, v in attrs) + zz(0)
    else:
        out += zz(0)
    return out


def valid(event_id):
    return head(1, event_id, "L-x", 1) + tail()


CLASSES = []


def cls(name, code, data, key="A-D"):
    CLASSES.append((name, code, data, key))


v = bytearray(valid("bad-magic"))
v[0] = 0x07
cls("wrong-magic-byte", "bad_magic", bytes(v))
cls("unknown-schema-id", "unknown_schema_id", head(999, "bad-id", "L-x", 1) + tail())
cls("truncated-avro", "undecodable", valid("bad-trunc")[:-6])
cls("string-claims-64MiB", "undecodable", frame(1) + zz(64 << 20) + b"abc")
cls("array-count-bomb", "limit_exceeded",
    head(1, "bad-arr", "L-x", 3) + zz(0) + zz(0) + zz(0) + zz(10_000_000) + s("L-1"))
cls("map-count-bomb", "limit_exceeded",
    head(1, "bad-map", "L-x", 1) + zz(0) * 5 + zz(10_000_000) + s("k") + s("v"))
cls("shared-with-over-256", "limit_exceeded",
    head(1, "bad-shared", "L-x", 3) + tail(shared=["L-%d" % i for i in range(300)]))
cls("attribute-over-1KiB", "limit_exceeded",
    head(1, "bad-attr", "L-x", 1) + tail(attrs=[("utm", "x" * 2000)]))
cls("over-max-message-bytes", "limit_exceeded",
    head(1, "bad-big", "L-x", 1) + tail(source="x" * 70000))
cls("unknown-enum-symbol", "unknown_enum", head(101, "bad-enum", "L-x", 8) + tail())
cls("missing-required-field", "missing_field",
    frame(102) + s("bad-missing") + zz(TS) + zz(1))
cls("id-over-256-bytes", "limit_exceeded", head(1, "bad-longid", "L" * 299, 1) + tail())
cls("wrong-record", "wrong_schema",
    frame(2) + s("bad-crm") + zz(TS) + s("D-1") + s("A-D") + zz(0) + zz(0) + zz(0)
    + zz(0) + zz(0) + zz(0) + zz(0) + zz(0))
cls("empty-key", "empty_key", valid("bad-key"), key="")
cls("null-value", "null_value", None)
cls("id-with-nul", "invalid_id", head(1, "bad-nul", b"L-x\x00y", 1) + tail())
cls("lead-id-with-brace", "invalid_id", head(1, "bad-brace", "L}:x", 1) + tail())
cls("time-long-min", "invalid_time", head(1, "bad-time-min", "L-x", 1, ts=-(1 << 63)) + tail())
cls("time-in-microseconds", "invalid_time",
    head(1, "bad-time-us", "L-x", 1, ts=TS * 1000) + tail())


def main(out):
    with open(os.path.join(out, "MANIFEST"), "w") as m:
        m.write("# class  file  key  dlq-code   (key - : empty; file - : null value)\n")
        for name, code, data, key in CLASSES:
            fname = "-"
            if data is not None:
                fname = name + ".bin"
                with open(os.path.join(out, fname), "wb") as f:
                    f.write(data)
            m.write("%s %s %s %s\n" % (name, fname, key or "-", code))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
