//! The `mitogen-fakessh` executable: everything is in the library
//! ([`fakessh::run`] picks the role from the arguments).

fn main() {
    std::process::exit(fakessh::run(std::env::args_os().collect()));
}
