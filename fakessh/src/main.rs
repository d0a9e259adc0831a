//! `mitogen-fakessh`: run rsync, scp, sftp, git and make through one
//! established ssh/sudo connection chain. The roles this one executable
//! plays are in [`roles`]; the host is [`host`], the far side [`agent`],
//! and how each hop starts is [`hop`].

mod agent;
mod cli;
mod docs;
mod fdstream;
mod hop;
mod host;
mod logging;
mod prompt;
mod roles;
mod sys;

fn main() {
    std::process::exit(roles::run(std::env::args_os().collect()));
}
