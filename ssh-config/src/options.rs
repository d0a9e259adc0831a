//! `-o` options on ssh's command line, checked as OpenSSH checks them.

use super::error::{ConfigError, LineProblem, Place};
use super::file::Line;
use super::keywords::Effect;
use super::matching::pattern_list_matches;

/// One `-o KEYWORD[ =]VALUE`: the keyword as written and the text after
/// it, or `None` for an unknown keyword that `ignore_unknown` (the
/// `IgnoreUnknown` of an earlier `-o`) names. A keyword OpenSSH does not
/// know, a missing argument and `Host`, `Match` or `Include` are errors,
/// with OpenSSH's wording.
pub fn check(
    text: &str,
    ignore_unknown: Option<&str>,
) -> Result<Option<(String, String)>, ConfigError> {
    let at = Place::command_line();
    let line = Line::parse(text, at.clone(), Vec::new())?.ok_or_else(|| ConfigError::Line {
        at: at.clone(),
        problem: LineProblem::NoArgument(String::new()),
    })?;
    let Some(known) = line.known else {
        if ignore_unknown.is_some_and(|list| pattern_list_matches(list, &line.key, false)) {
            return Ok(None);
        }
        return Err(ConfigError::BadOption { at, key: line.key });
    };
    if known.effect == Effect::Structure {
        let what = if known.name == "Include" {
            "Include"
        } else {
            "Host"
        };
        return Err(ConfigError::Line {
            at,
            problem: LineProblem::NotAnOption(what),
        });
    }
    let (key, rest) = super::split::keyword(text).unwrap_or_default();
    Ok(Some((key.to_string(), rest.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        check(text, None).unwrap_err().to_string()
    }

    #[test]
    fn options_as_openssh_takes_them() {
        assert_eq!(
            check("ForwardX11 no", None).unwrap(),
            Some(("ForwardX11".into(), "no".into()))
        );
        assert_eq!(
            check("SendEnv=GIT_PROTOCOL", None).unwrap(),
            Some(("SendEnv".into(), "GIT_PROTOCOL".into()))
        );
        assert_eq!(
            err("Bogus=1"),
            "command-line: line 0: Bad configuration option: bogus"
        );
        assert_eq!(
            err("Bogus"),
            "command-line line 0: no argument after keyword \"bogus\""
        );
        assert_eq!(
            err("Host=x"),
            "command-line line 0: Host directive not supported as a command-line option"
        );
        assert_eq!(
            err("Match all"),
            "command-line line 0: Host directive not supported as a command-line option"
        );
        assert_eq!(check("Bogus=1", Some("Bog*")).unwrap(), None);
        for every in [
            "ControlMaster=auto",
            "ControlPersist=60s",
            "ControlPath=/tmp/%C",
            "BatchMode=yes",
            "ServerAliveInterval=5",
            "ChannelTimeout session=5m",
            "Tag x",
        ] {
            assert!(check(every, None).unwrap().is_some(), "{every}");
        }
    }
}
