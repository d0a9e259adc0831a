//! Replays the checked-in fuzz corpora of the known_hosts reader and of the
//! bootstrap's reply parser on stable.
#![cfg(feature = "host")]

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        run(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 1, "{target}: corpus is empty");
}

#[test]
fn known_hosts_corpus() {
    replay("known_hosts", fakessh::fuzzing::known_hosts);
}

#[test]
fn bootstrap_replies_corpus() {
    replay("bootstrap_replies", fakessh::fuzzing::bootstrap_replies);
}
