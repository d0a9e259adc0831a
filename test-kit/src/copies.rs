//! rsync, scp (SFTP and `-O`) and sftp through one chain: a script that
//! copies a tree and its big file with each, and the check of what arrived.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::tree::assert_same_tree;

/// What [`ClientCopies::script`] copies, and where.
pub struct ClientCopies {
    src: PathBuf,
    dst: PathBuf,
    big: PathBuf,
    /// The script for `sh -c` on the host, `first` at its start: `src`
    /// by rsync into `dst/tree`, `src/a/big.bin` by scp, scp -O and sftp
    /// into `dst`, then `ssh target id -un` (who the chain ends as).
    pub script: String,
}

impl ClientCopies {
    /// `src` as [`make_tree`](crate::make_tree) made it, with a big file;
    /// the sftp batch file goes into `work`; `first` is shell run first
    /// (with its `; `), or empty.
    pub fn new(src: &Path, dst: &Path, work: &Path, first: &str) -> ClientCopies {
        let big = src.join("a/big.bin");
        let batch = work.join("batch");
        std::fs::write(
            &batch,
            format!("put {} {}/via-sftp.bin\n", big.display(), dst.display()),
        )
        .unwrap();
        let script = format!(
            "set -e; {first}rsync -a '{src}/' target:'{dst}/tree/'; \
             scp '{big}' target:'{dst}/via scp.bin'; scp -O '{big}' target:'{dst}/via-scp-O.bin'; \
             sftp -q -b '{batch}' target; ssh target id -un",
            src = src.display(),
            dst = dst.display(),
            big = big.display(),
            batch = batch.display()
        );
        ClientCopies {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            big,
            script,
        }
    }

    /// The tree and each copy of the big file arrived whole, owned by `uid`.
    pub fn assert_arrived_as(&self, uid: u32) {
        assert_same_tree(&self.src, &self.dst.join("tree"));
        let big = std::fs::read(&self.big).unwrap();
        for name in ["via scp.bin", "via-scp-O.bin", "via-sftp.bin"] {
            let copied = self.dst.join(name);
            assert_eq!(std::fs::read(&copied).unwrap(), big, "{name}");
            assert_eq!(
                std::fs::metadata(&copied).unwrap().uid(),
                uid,
                "{name} should be uid {uid}'s"
            );
        }
    }
}
