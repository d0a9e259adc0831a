//! `fakessh-bench PART [...]`: one part of the bench alone, printed
//! instead of written into docs/BENCHMARKS.md.

use std::time::Duration;

use crate::harness::{Sshd, start_sshd, write_config};
use crate::{bootstrap, fat, fleet, forward, persist, proxy, soak};

/// Run the part `args` names, if it names one; whether it did.
pub fn run_one(args: &[String]) -> bool {
    let quick = args.iter().any(|a| a == "--quick");
    let (rows, notes) = match args.first().map(String::as_str) {
        // Only the soak.
        Some("soak") => {
            let sshd = start_sshd();
            let cfg = write_config(&sshd, 1);
            soak::run(&sshd, &cfg, quick)
        }
        // Only the fleet rows.
        Some("fleet") => behind_proxy(|sshd, port, _| fleet::run(sshd, port, quick)),
        // Only the forwarding rows.
        Some("forward") => behind_proxy(|_, _, cfg| forward::run(cfg, quick)),
        // `fat [--quick] [--no-sudo] [--one-lane] [--bastion] [--ours-only]
        // [--rsync-mib N] [--forward-mib N]
        // [--rtt MS,...] [--cap MBIT,...]`: only the long-fat-link rows.
        Some("fat") => {
            let plan = match fat::Plan::parse(&args[1..]) {
                Ok(plan) => plan,
                Err(e) => {
                    eprintln!("fakessh-bench fat: {e}");
                    std::process::exit(2);
                }
            };
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let rows = rt.block_on(async {
                let sshd = Sshd::start();
                let links = fat::start_links(sshd.port, &plan).await;
                tokio::task::block_in_place(|| fat::run(&sshd, &links, &plan))
            });
            (rows, Vec::new())
        }
        // Only the persistent-context rows.
        Some("persist") => behind_proxy(|_, _, cfg| (persist::run(cfg, 20), Vec::new())),
        // Only the bootstrap rows.
        Some("bootstrap") => behind_proxy(|sshd, _, cfg| bootstrap::run(sshd, cfg, 5)),
        _ => return false,
    };
    println!("{}", rows.join("\n"));
    if !notes.is_empty() {
        println!("\n{}", notes.join("\n"));
    }
    true
}

/// `part` with an sshd behind the 50 ms delay proxy and its ssh_config.
fn behind_proxy(
    part: impl FnOnce(&Sshd, u16, &str) -> (Vec<String>, Vec<String>),
) -> (Vec<String>, Vec<String>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let sshd = start_sshd();
        let proxy_port = proxy::start(sshd.port, Duration::from_millis(50)).await;
        let cfg = write_config(&sshd, proxy_port);
        tokio::task::block_in_place(|| part(&sshd, proxy_port, &cfg))
    })
}
