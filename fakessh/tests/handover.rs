//! Stdio handed over: a shim passes its pipes and sockets to the host, which
//! reads and writes them itself; a tty or a regular file stays with the shim.
//! Whatever the mix, a session must look exactly like OpenSSH's: the same
//! bytes on the same streams, stderr before the status that follows it, EOF
//! when the remote side closes, nothing left open when ssh is gone, and the
//! client's descriptors left in the mode they were in.
#![cfg(feature = "host")]

mod common;

use common::*;

/// `mitogen-fakessh --to local -- python3 -c SCRIPT`, after checking python.
/// The scripts pass `close_fds=False`, so their shims use the inherited
/// control socket (the fallback socket has its own test in local_sessions).
fn local_py(script: &str) -> Outcome {
    require("python3");
    fakessh(&["--to", "local", "--", "python3", "-c", script])
}

#[test]
fn files_and_pipes_mix_in_one_session() {
    // Every combination of file (stays with the shim) and pipe (handed over)
    // for stdin, stdout and stderr.
    let out = local_sh(
        r#"
        d=$(mktemp -d); cd "$d" || exit 1
        printf 'in-data' > in
        remote='cat; echo; echo to-err >&2; exit 3'
        for i in file pipe; do for o in file pipe; do for e in file pipe; do
            rm -f out err
            run() {
                if [ $i = file ]; then ssh h "$remote" < in; else cat in | ssh h "$remote"; fi
            }
            if [ $o = file ]; then
                if [ $e = file ]; then run > out 2> err; else run 2>&1 > out | cat > err; fi
            else
                if [ $e = file ]; then run 2> err | cat > out; else { run 2>&1 >&3 | cat > err; } 3>&1 | cat > out; fi
            fi
            echo "$i/$o/$e: rc=$? out=$(cat out) err=$(cat err)"
        done; done; done
        cd /; rm -rf "$d"
        "#,
    );
    out.expect_code(0);
    let lines: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 8, "{}", out.stdout_text());
    for line in &lines {
        // The status is checked where it is visible: a pipeline reports its
        // last command's, so only the all-file run shows ssh's 3.
        assert!(
            line.ends_with("out=in-data err=to-err"),
            "{line}\n{}",
            out.stderr_text()
        );
    }
    assert!(
        lines[0].starts_with("file/file/file: rc=3 "),
        "{}",
        lines[0]
    );
}

#[test]
fn shared_descriptors_keep_their_blocking_mode() {
    // O_NONBLOCK belongs to the open file, not the descriptor: if the host
    // set it on a pipe it was handed, every other holder of that pipe (the
    // client, make's other jobs) would see EAGAIN. Check our copies while
    // the session runs and after it.
    let script = r#"
import os, subprocess, time
r, w = os.pipe()
r2, w2 = os.pipe()
p = subprocess.Popen(["ssh", "h", "cat; sleep 1"], stdin=r, stdout=w2, close_fds=False)
os.write(w, b"hello\n")
os.close(w)
time.sleep(0.5)
print("during", os.get_blocking(r), os.get_blocking(w2))
os.close(w2)
data = os.read(r2, 100)
p.wait()
print("after", os.get_blocking(r), data, p.returncode)
"#;
    let out = local_py(script);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "during True True\nafter True b'hello\\n' 0\n",
        "{}",
        out.stderr_text()
    );
}

#[test]
fn stderr_kept_by_the_shim_is_written_before_stdout_moves_on() {
    // stdout is a pipe (the host writes it), stderr a file (the shim writes
    // it). A client that reads a status line and kills ssh at once, as
    // rsync does, must find the message written before that line already
    // in its stderr. Timing-dependent when broken, hence the repetitions.
    let script = r#"
import subprocess, tempfile
lost = 0
for run in range(60):
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(["ssh", "h", "echo message >&2; echo status; sleep 5"],
                             stdout=subprocess.PIPE, stderr=err, close_fds=False)
        line = p.stdout.readline()
        p.kill()
        p.wait()
        err.seek(0)
        if line != b"status\n" or "message" not in err.read():
            lost += 1
print("lost", lost)
"#;
    let out = local_py(script);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "lost 0\n", "{}", out.stderr_text());
}

#[test]
fn killed_shim_releases_the_pipes_it_handed_over() {
    // Once ssh is gone, the host must not keep its stdin or stdout open:
    // the writer feeding ssh gets EPIPE and the reader after it gets EOF,
    // as they would if OpenSSH's client had been killed.
    let script = r#"
import os, select, signal, subprocess, time
feed = subprocess.Popen(["sh", "-c", "head -c 100000000 /dev/zero; echo feeder-done $? >&2"],
                        stdout=subprocess.PIPE)
p = subprocess.Popen(["ssh", "h", "sleep 0.3; cat >/dev/null & yes"], stdin=feed.stdout,
                     stdout=subprocess.PIPE, close_fds=False)
feed.stdout.close()
assert p.stdout.read(4096)
p.kill()
p.wait()
deadline = time.time() + 10
while True:
    ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.time()))
    if not ready:
        print("stdout still open")
        break
    if not os.read(p.stdout.fileno(), 1 << 16):
        print("stdout eof")
        break
try:
    feed.wait(timeout=10)
    print("feeder exited", feed.returncode)
except subprocess.TimeoutExpired:
    print("feeder still blocked")
    feed.kill()
"#;
    let out = local_py(script);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "stdout eof\nfeeder exited 0\n",
        "{}",
        out.stderr_text()
    );
}
