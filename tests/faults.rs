//! Faults: the agent dies in the middle of a transfer.

mod common;

use common::*;

#[test]
fn agent_killed_mid_transfer_fails_fast_and_leaves_no_partial_file() {
    if !require("rsync") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    write_random_file(&src, 64 << 20, 3);
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("big.bin"), b"the old version\n").unwrap();
    let script = format!(
        r#"agent=$(ssh h 'echo $PPID')
rsync -a --bwlimit=8m '{src}' h:'{dst}/' 2>rsync.err &
rsync=$!
for i in $(seq 200); do ls -a '{dst}' | grep -q '^\.big\.bin\.' && break; sleep 0.05; done
killed=$(date +%s%N)
kill -9 "$agent"
wait $rsync; status=$?
done=$(date +%s%N)
echo "status=$status"
echo "ms=$(( (done - killed) / 1000000 ))"
cat rsync.err >&2"#,
        src = src.display(),
        dst = dst.display()
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["--to", "local", "--", "sh", "-c", &script])
        .current_dir(tmp.path());
    let out = run_with(cmd, b"", std::time::Duration::from_secs(120));
    out.assert_no_panic();
    let text = out.stdout_text();
    let status: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("status="))
        .unwrap()
        .parse()
        .unwrap();
    let ms: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ms="))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(status, 0, "rsync should fail: {text}");
    assert!(ms < 2000, "rsync took {ms} ms to notice the dead agent");
    let err = out.stderr_text();
    assert!(
        err.contains("local: connection lost"),
        "the error should name the hop: {err}"
    );
    // rsync's temp-file semantics: the old file stays, no partial is left.
    assert_eq!(
        std::fs::read(dst.join("big.bin")).unwrap(),
        b"the old version\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "partial files left: {leftovers:?}");
}
