"""A hostile agent for fakessh/tests/trust_routing.rs: root on one remote host
controls our agent there, so this plays it. It completes the handshake as a
real agent would, answers its first session with the bytes in ROGUE_ANSWER,
then (once the file ROGUE_GO exists, if set) writes the frames in
ROGUE_FRAMES, which the test encoded with router's own codec, and
then as many raw frames as ROGUE_FLOOD asks for. It
records every frame the host sends it, and the end of its stream, in
ROGUE_REPORT. Speaks the wire format of router/src/frame.rs."""
import os, struct, sys, threading, time

fin, fout = sys.stdin.buffer, sys.stdout.buffer
HDR = struct.Struct(">HIIIIII")
CBOR, READY, SPAWN = 0x4D43, 105, 111
report = open(os.environ["ROGUE_REPORT"], "a", buffering=1)

def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = fin.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf

def read_frame():
    head = read_exact(HDR.size)
    if head is None:
        return None
    magic, dst, src, auth, handle, reply_to, ln = HDR.unpack(head)
    payload = read_exact(ln)
    if payload is None:
        return None
    return dict(dst=dst, src=src, auth=auth, handle=handle, reply_to=reply_to, len=ln)

def cbor_text(s):
    b = s.encode()
    return bytes([0x60 | len(b)]) + b

def write(data):
    try:
        fout.write(data)
        fout.flush()
    except OSError as e:
        report.write(f"write failed: {e}\n")

config = read_frame()
me = config["dst"]
hello = bytes([0xA3]) + cbor_text("version") + cbor_text("rogue") + cbor_text("pid") \
    + bytes([0x1A]) + struct.pack(">I", os.getpid()) + cbor_text("user") + cbor_text("rogue")
write(HDR.pack(CBOR, 0, me, me, READY, 0, len(hello)) + hello)

spawned = threading.Event()
def reader():
    while True:
        f = read_frame()
        if f is None:
            report.write("eof\n")
            return
        report.write("frame dst={dst} src={src} auth={auth} handle={handle} len={len}\n".format(**f))
        if f["handle"] == SPAWN:
            spawned.set()
t = threading.Thread(target=reader)
t.start()

spawned.wait(60)
write(open(os.environ["ROGUE_ANSWER"], "rb").read())
go = os.environ.get("ROGUE_GO")
deadline = time.time() + 60
while go and not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
report.write("attacking\n")
write(open(os.environ["ROGUE_FRAMES"], "rb").read())
# ROGUE_FLOOD="DST HANDLE COUNT SIZE": then COUNT raw frames of SIZE bytes.
flood = os.environ.get("ROGUE_FLOOD")
if flood:
    dst, handle, count, size = map(int, flood.split())
    frame = HDR.pack(0x4D42, dst, me, me, handle, 0, size) + b"f" * size
    sent = 0
    try:
        for _ in range(count):
            fout.write(frame)
            sent += 1
        fout.flush()
    except OSError as e:
        report.write(f"flood stopped after {sent} frames: {e}\n")
    report.write(f"flooded {sent} frames\n")
t.join()
