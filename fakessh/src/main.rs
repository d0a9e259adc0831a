//! The `mitogen-fakessh` executable: everything is in the library
//! ([`fakessh::run`] picks the role from the arguments).

/// The 64-bit static (musl) builds: musl's own malloc costs a quarter of
/// the agent's throughput (docs/BENCHMARKS.md).
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(fakessh::run(std::env::args_os().collect()));
}
