//! Multi-hop through a bastion to a target the host cannot reach, in
//! network namespaces this test creates: host <-> bastion and bastion <->
//! target on two /30s from the documentation ranges that this machine does
//! not use itself, and an `unreachable` route on the host so its direct
//! attempt fails locally, without a packet leaving the machine.
#![cfg(feature = "host")]

mod common;

use common::netns::TwoHops;
use common::sshd::require_sshd;
use common::*;

#[test]
#[ignore = "needs root, sshd and network namespaces (run ./tests/run)"]
fn bastion_reaches_a_target_the_host_cannot() {
    require_sshd();
    require("ip");
    require("rsync");
    let hops = TwoHops::start();
    let (topo, bastion, target, dir, cfg) = (
        &hops.topo,
        &hops.bastion,
        &hops.target,
        &hops.dir,
        &hops.cfg,
    );

    // Directly, the target is unreachable from the host.
    let direct = fakessh(&["--ssh-config", cfg, "--to", "ssh:target", "--", "true"]);
    direct.expect_code(255);
    assert!(
        direct.stderr_text().contains("ssh:target"),
        "{}",
        direct.stderr_text()
    );

    // Through the bastion's agent it is, and commands run on the target.
    let src = dir.path().join("src");
    make_tree(&src, 4 << 20);
    let dst = dir.path().join("dst");
    let out = fakessh(&[
        "--ssh-config",
        cfg,
        "--to",
        "ssh:bastion,ssh:target",
        "--",
        "sh",
        "-c",
        &format!(
            "rsync -a '{}/' target:'{}/' && ssh target 'ip -o addr show'",
            src.display(),
            dst.display()
        ),
    ]);
    out.assert_no_panic().expect_code(0);
    assert_same_tree(&src, &dst);
    assert!(
        out.stdout_text().contains(&topo.target_ip),
        "{}",
        out.stdout_text()
    );
    assert!(
        !out.stdout_text().contains(&topo.bastion_ip),
        "ran on the wrong host: {}",
        out.stdout_text()
    );
    assert!(
        target
            .log()
            .contains(&format!("from {}", topo.bastion_inner_ip)),
        "target log:\n{}",
        target.log()
    );
    assert!(
        bastion.log().contains(&format!("from {}", topo.host_ip)),
        "bastion log:\n{}",
        bastion.log()
    );
}
