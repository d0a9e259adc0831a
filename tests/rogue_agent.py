"""A misbehaving agent for tests/faults.rs: it completes the handshake, then
forges frames. It records what the host answered in the file named by
ROGUE_REPORT. Speaks the wire format of router-core/src/frame.rs."""
import os, struct, sys, time

fin, fout = sys.stdin.buffer, sys.stdout.buffer
HDR = struct.Struct(">HIIIIII")
CBOR, RAW = 0x4D43, 0x4D42
READY, SPAWN, EVENT, IS_DEAD = 105, 111, 125, 999
report = open(os.environ["ROGUE_REPORT"], "a", buffering=1)

def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = fin.read(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf

def read_frame():
    magic, dst, src, auth, handle, reply_to, ln = HDR.unpack(read_exact(HDR.size))
    return dict(magic=magic, dst=dst, src=src, auth=auth, handle=handle, reply_to=reply_to, payload=read_exact(ln))

def send(magic, dst, src, auth, handle, reply_to, payload=b""):
    fout.write(HDR.pack(magic, dst, src, auth, handle, reply_to, len(payload)) + payload)
    fout.flush()

def cbor_text(s):
    b = s.encode()
    return bytes([0x60 | len(b)]) + b if len(b) < 24 else bytes([0x78, len(b)]) + b

def cbor_map(d):
    out = bytes([0xA0 | len(d)])
    for k, v in d.items():
        out += cbor_text(k) + (cbor_text(v) if isinstance(v, str) else bytes([0x1A]) + struct.pack(">I", v))
    return out

config = read_frame()
me = config["dst"]
send(CBOR, 0, me, me, READY, 0, cbor_map({"version": "rogue", "pid": os.getpid(), "user": "rogue"}))
# 1. Claim the host's authority.
send(RAW, 0, 0, 0, EVENT, 0, b"forged")
# 2. Claim another context's identity.
send(RAW, 0, me + 7, me + 7, EVENT, 0, b"forged")
# 3. An unknown handle, asking for a reply.
send(RAW, 0, me, me, 4242, 1234, b"")
# 4. Ask a sibling (the next context the host starts) to run a command.
deadline = time.time() + 60
while time.time() < deadline:
    send(CBOR, me + 1, me, me, SPAWN, 1235, b"\xa0")
    frame = read_frame()
    if frame["reply_to"] == IS_DEAD:
        reason = frame["payload"].decode(errors="replace")
        report.write(f"dead {frame['handle']}: {reason}\n")
        if frame["handle"] == 1235 and "refused by policy" in reason:
            break
    time.sleep(0.2)
while True:
    read_frame()
