//! Replays the checked-in fuzz corpus of the ssh_config reader on stable.

use std::path::Path;

#[test]
fn ssh_config_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ssh_config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        ssh_config::fuzzing::config(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 3, "corpus too small");
}
