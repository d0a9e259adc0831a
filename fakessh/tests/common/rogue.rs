//! The hostile agent of the trust tests (`fakessh/tests/rogue_agent.py`):
//! its frames, encoded by router's own codec, and the program the host's
//! testing hook starts in an agent's place.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use router::frame::Frame;

/// `frames` as they go on the wire.
pub fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode_into(&mut out);
    }
    out.to_vec()
}

/// An executable `rogue` in `dir` that runs the rogue agent (for
/// `MITOGEN_FAKESSH_TEST_AGENT_PROGRAM`).
pub fn rogue_program(dir: &Path) -> PathBuf {
    let rogue = dir.join("rogue");
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rogue_agent.py");
    std::fs::write(
        &rogue,
        format!("#!/bin/sh\nexec python3 {} \"$@\"\n", program.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rogue, std::fs::Permissions::from_mode(0o755)).unwrap();
    rogue
}
