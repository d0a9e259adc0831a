//! `MFS_BUILD_ID`: a hash of the workspace's sources (the protocol, its
//! drivers, the shims, the ssh config reader and fakessh's own, all of
//! `src/` of each) and of `Cargo.lock`. Agents built by `./build-agents`
//! carry it too, so the host can tell an agent built from other sources
//! (which may speak another protocol) and refuse to upload it. Any change
//! to these sources, the host's alone included, asks for the agents to be
//! built again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = here.parent().expect("fakessh sits in the workspace");
    let mut files = Vec::new();
    for dir in [
        "fakessh/src",
        "proto/src",
        "router/src",
        "shims/src",
        "ssh-config/src",
    ] {
        let dir = workspace.join(dir);
        println!("cargo::rerun-if-changed={}", dir.display());
        collect(&dir, &mut files);
    }
    let lock = workspace.join("Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    files.push(lock);
    files.sort();
    let mut hash = Sha256::new();
    for file in &files {
        let name = file.strip_prefix(workspace).unwrap_or(file);
        hash.update(name.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(file).unwrap_or_default());
        hash.update([0]);
    }
    let id: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo::rustc-env=MFS_BUILD_ID={id}");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
