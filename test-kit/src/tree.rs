//! File trees with awkward names, random files, and tree comparison.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random bytes (xorshift), fast enough for 200 MiB.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// File names that break naive quoting, all valid on Linux.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space",
    "single'quote",
    "double\"quote",
    "dollar$HOME",
    "back`tick`",
    "ünïcødé ✓",
    "new\nline",
    "-rf",
    "semi;colon&amp|pipe",
    "star*glob?",
];

/// `parent/root-only`, a directory only root may write into (and
/// `parent` made 0755, so others may reach it).
pub fn root_only_dir(parent: &Path) -> PathBuf {
    let dir = parent.join("root-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A tree with nested directories, awkward names and a file of `big` bytes.
pub fn make_tree(root: &Path, big: usize) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    for (i, name) in AWKWARD_NAMES.iter().enumerate() {
        std::fs::write(root.join(name), format!("content of {name:?}\n")).unwrap();
        std::fs::create_dir_all(root.join("a").join(format!("dir {name}"))).unwrap();
        write_random_file(&root.join("a/b").join(name), 1000 + i * 4096, i as u64 + 7);
    }
    std::fs::write(root.join("a/b/c/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../with space", root.join("a/link")).unwrap();
    if big > 0 {
        write_random_file(&root.join("a/big.bin"), big, 42);
    }
}

/// Assert two trees hold the same names, kinds, symlink targets and bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut left = listing(a);
    let mut right = listing(b);
    left.sort();
    right.sort();
    let names_l: Vec<_> = left.iter().map(|(p, _)| p.clone()).collect();
    let names_r: Vec<_> = right.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(names_l, names_r, "trees {a:?} and {b:?} differ in names");
    for ((p, kind), (_, kind2)) in left.iter().zip(right.iter()) {
        assert_eq!(kind, kind2, "{p:?} differs in kind");
        if kind == "file" {
            assert!(
                same_bytes(&a.join(p), &b.join(p)),
                "{p:?} differs in content"
            );
        }
    }
}

fn listing(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let p = rel.join(entry.file_name());
            let ft = entry.file_type().unwrap();
            let kind = if ft.is_symlink() {
                format!("link -> {:?}", std::fs::read_link(root.join(&p)).unwrap())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                "file".to_string()
            };
            out.push((p, kind));
        }
    }
    out
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        let mut got = 0;
        while got < n {
            let m = fb.read(&mut bb[got..n]).unwrap();
            if m == 0 {
                return false;
            }
            got += m;
        }
        if n == 0 {
            return fb.read(&mut bb[..1]).unwrap() == 0;
        }
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}
