//! The shared options given in several places, as one set: before and
//! after a subcommand, and on the command line over the config file. Each
//! place is the [`HostArgs`] clap definition's matches; the result is the
//! one command line they amount to, parsed by that same definition. How a
//! flag combines follows from its clap action alone, so that a new flag
//! needs no code here.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::host_args::HostArgs;

/// How the places given to [`combined`] relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precedence {
    /// Parts of one command line (before and after a subcommand): lists
    /// join, counts add, a flag of one value given twice is refused.
    Joined,
    /// The first place wins (the command line over the config file): a
    /// flag, or one that conflicts with it, given in an earlier place hides
    /// a later place's; lists join, earlier places first.
    FirstWins,
}

/// Why places cannot be combined.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A flag of one value given in two places joined as one command line.
    #[error("{0} given twice")]
    Twice(String),
    /// What the combined command line cannot be (e.g. two flags that
    /// conflict, given in two places joined as one).
    #[error("{0}")]
    Refused(String),
}

/// The combined options, and which place each list or single value came
/// from.
#[derive(Debug)]
pub struct Combined {
    pub args: HostArgs,
    pub matches: ArgMatches,
    /// For each flag id: the index of the place each of its values came
    /// from, in the order of the values.
    pub places: HashMap<String, Vec<usize>>,
}

/// The clap command of the shared options alone: what the config file is
/// read with, and what combined places are parsed with.
pub fn host_command() -> Command {
    HostArgs::augment_args(
        Command::new("mitogen-fakessh")
            .no_binary_name(true)
            .disable_help_flag(true)
            .disable_version_flag(true),
    )
}

/// Parse the shared options alone (`args` as `--flag=value` words).
pub fn parse(args: Vec<OsString>) -> Result<(HostArgs, ArgMatches), clap::Error> {
    let mut command = host_command();
    let matches = command.try_get_matches_from_mut(args)?;
    let host = HostArgs::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    Ok((host, matches))
}

/// The first line of a clap error, without its `error: ` prefix.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Whether `id` was given in `place` (not a default); a place may define
/// only some of the flags (`agents` has `--agent` alone).
fn given(place: &ArgMatches, id: &str) -> bool {
    place.ids().any(|known| known == id) && place.value_source(id) == Some(ValueSource::CommandLine)
}

/// The ids of the flags that conflict with `arg`, either way round.
fn conflicting<'a>(command: &'a Command, arg: &Arg) -> Vec<&'a str> {
    let mut ids: Vec<&str> = command
        .get_arg_conflicts_with(arg)
        .iter()
        .map(|a| a.get_id().as_str())
        .collect();
    for other in command.get_arguments() {
        if command
            .get_arg_conflicts_with(other)
            .iter()
            .any(|a| a.get_id() == arg.get_id())
        {
            ids.push(other.get_id().as_str());
        }
    }
    ids
}

/// `places` (each the matches of a command that holds the [`HostArgs`]
/// flags, or some of them) as one set of options.
pub fn combined(places: &[&ArgMatches], precedence: Precedence) -> Result<Combined, LayerError> {
    let mut command = host_command();
    command.build();
    let mut words: Vec<OsString> = Vec::new();
    let mut sources: HashMap<String, Vec<usize>> = HashMap::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        // Every shared option has a long name: the config file's keys are
        // those names (its unit tests check both).
        let long = arg.get_long().expect("a shared option without a long name");
        let flag = format!("--{long}");
        let hidden = |at: usize| {
            precedence == Precedence::FirstWins
                && places[..at].iter().any(|earlier| {
                    given(earlier, id) && !matches!(arg.get_action(), ArgAction::Append)
                        || conflicting(&command, arg)
                            .iter()
                            .any(|other| given(earlier, other))
                })
        };
        let giving: Vec<usize> = (0..places.len())
            .filter(|&at| given(places[at], id) && !hidden(at))
            .collect();
        if precedence == Precedence::Joined
            && giving.len() > 1
            && matches!(arg.get_action(), ArgAction::Set)
        {
            return Err(LayerError::Twice(flag));
        }
        let from = sources.entry(id.to_string()).or_default();
        for at in giving {
            let place = places[at];
            match arg.get_action() {
                // Once: clap refuses a switch given twice.
                ArgAction::SetTrue => {
                    if place.get_flag(id) && from.is_empty() {
                        words.push(flag.clone().into());
                        from.push(at);
                    }
                }
                ArgAction::Count => {
                    for _ in 0..place.get_count(id) {
                        words.push(flag.clone().into());
                    }
                    from.push(at);
                }
                _ => {
                    for value in place.get_raw(id).into_iter().flatten() {
                        let mut word = OsString::from(format!("{flag}="));
                        word.push(value);
                        words.push(word);
                        from.push(at);
                    }
                }
            }
        }
    }
    let (args, matches) = parse(words).map_err(|e| LayerError::Refused(one_line(&e)))?;
    Ok(Combined {
        args,
        matches,
        places: sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::host_args::texts;

    fn place(args: &[&str]) -> ArgMatches {
        parse(args.iter().map(OsString::from).collect()).unwrap().1
    }

    #[test]
    fn joined_places_add_up_and_refuse_a_value_twice() {
        let before = place(&["--host", "a=local", "-v", "--ssh-config", "x"]);
        let after = place(&["--host", "b=local", "-v", "--remote-gateway-ports"]);
        let both = combined(&[&before, &after], Precedence::Joined).unwrap();
        assert_eq!(texts(&both.args.hosts), ["a=local", "b=local"]);
        assert_eq!(both.args.verbose, 2);
        assert!(both.args.remote_gateway_ports);
        assert_eq!(both.args.ssh_config.as_deref(), Some("x".as_ref()));
        assert_eq!(both.places["hosts"], [0, 1]);
        let again = place(&["--ssh-config", "y"]);
        let e = combined(&[&before, &again], Precedence::Joined).unwrap_err();
        assert_eq!(e.to_string(), "--ssh-config given twice");
        let quiet = place(&["-q"]);
        assert!(combined(&[&before, &quiet], Precedence::Joined).is_err());
    }

    #[test]
    fn the_first_place_wins_and_lists_join() {
        let command_line = place(&["--to", "local", "-v", "--agent", "A b=/x"]);
        let file = place(&[
            "--to=ssh:%h",
            "--quiet",
            "--agent-dir=/d",
            "--agent=C d=/y",
            "--host=w*=local",
        ]);
        let both = combined(&[&command_line, &file], Precedence::FirstWins).unwrap();
        assert_eq!(both.args.to.as_deref(), Some("local"));
        assert_eq!(both.places["to"], [0]);
        // -v on the command line hides the file's conflicting --quiet.
        assert_eq!((both.args.verbose, both.args.quiet), (1, false));
        assert_eq!(both.args.agent_dir.as_deref(), Some("/d"));
        let platforms: Vec<&str> = both.args.agents.iter().map(|a| &*a.platform).collect();
        assert_eq!(platforms, ["A b", "C d"]);
        assert_eq!(texts(&both.args.hosts), ["w*=local"]);
        assert_eq!(both.places["hosts"], [1]);
        // The file's verbosity stands when the command line says none.
        let quiet_file = place(&["--verbose", "--verbose"]);
        let none = place(&[]);
        let both = combined(&[&none, &quiet_file], Precedence::FirstWins).unwrap();
        assert_eq!(both.args.verbose, 2);
    }
}
