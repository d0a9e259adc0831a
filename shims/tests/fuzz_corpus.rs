//! Replays the checked-in fuzz corpus of the ssh argv parser.

use std::path::Path;

#[test]
fn ssh_argv_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ssh_argv");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        shims::argv::fuzz_parse(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 4, "corpus too small");
}
