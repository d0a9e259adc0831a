//! Real rsync through a `local` context: push, pull and --delete, with a
//! 200 MiB file and file names that break naive quoting.
#![cfg(feature = "host")]

mod common;

use common::*;

#[test]
fn rsync_push_is_byte_identical_and_delete_works() {
    require("rsync");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // The destination path itself goes through the remote shell.
    let dst = tmp.path().join("dst dir $x 'q'");
    make_tree(&src, 200 << 20);
    let src_arg = format!("{}/", src.display());
    let dst_arg = format!("anyhost:{}/", dst.display());
    fakessh(&["--to", "local", "--", "rsync", "-a", &src_arg, &dst_arg])
        .assert_no_panic()
        .expect_code(0);
    assert_same_tree(&src, &dst);

    // --delete removes what the source no longer has, in the remote tree.
    std::fs::write(dst.join("stale file"), b"old").unwrap();
    std::fs::remove_file(src.join("-rf")).unwrap();
    fakessh(&[
        "--to", "local", "--", "rsync", "-a", "--delete", &src_arg, &dst_arg,
    ])
    .expect_code(0);
    assert!(!dst.join("stale file").exists());
    assert!(!dst.join("-rf").exists());
    assert_same_tree(&src, &dst);
}

#[test]
fn rsync_pull_is_byte_identical() {
    require("rsync");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("remote src");
    let dst = tmp.path().join("dst");
    make_tree(&src, 20 << 20);
    let src_arg = format!("anyhost:{}/", src.display());
    let dst_arg = format!("{}/", dst.display());
    fakessh(&["--to", "local", "--", "rsync", "-a", &src_arg, &dst_arg]).expect_code(0);
    assert_same_tree(&src, &dst);
}

#[test]
fn rsync_reports_remote_errors_with_its_own_exit_code() {
    require("rsync");
    let tmp = tempfile::tempdir().unwrap();
    let src = format!("anyhost:{}/does-not-exist/", tmp.path().display());
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "rsync",
        "-a",
        &src,
        &format!("{}/x/", tmp.path().display()),
    ]);
    // rsync's "some files could not be transferred" (23), message on stderr.
    out.expect_code(23);
    assert!(
        out.stderr_text().contains("does-not-exist"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn rsync_exit_12_gets_a_hint() {
    require("rsync");
    let tmp = tempfile::tempdir().unwrap();
    let dst = format!("h:{}/x/", tmp.path().display());
    let out = fakessh(&[
        "--to",
        "local",
        "--",
        "rsync",
        "-a",
        "--rsync-path=/bin/false",
        "/etc/hostname",
        &dst,
    ]);
    out.expect_code(12);
    assert!(
        out.stderr_text().contains("hint: rsync exit 12"),
        "{}",
        out.stderr_text()
    );
    assert!(
        !out.stderr_text().contains("warning"),
        "{}",
        out.stderr_text()
    );
}
