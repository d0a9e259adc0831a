//! Where the host finds the agents it can upload (`--agent`, the agents
//! directories, itself), and `mitogen-fakessh agents`, which lists them.

use std::path::{Path, PathBuf};

use super::agent::{AGENTS_ENV, Agent, AgentError, Agents, Source};

/// One `--agent PLATFORM=PATH`: clap parses it with [`str::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFlag {
    /// `uname -sm` of the remote hosts it is for.
    pub platform: String,
    pub path: PathBuf,
}

impl std::str::FromStr for AgentFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<AgentFlag, String> {
        text.split_once('=')
            .filter(|(platform, path)| !platform.trim().is_empty() && !path.is_empty())
            .map(|(platform, path)| AgentFlag {
                platform: platform.trim().to_string(),
                path: PathBuf::from(path),
            })
            .ok_or_else(|| {
                "expected PLATFORM=PATH, e.g. --agent \"Linux aarch64=/path/to/mitogen-fakessh\""
                    .to_string()
            })
    }
}

/// Everything this host can upload: `flags` first, then the agents
/// directories, then this executable.
pub fn discover(flags: &[AgentFlag]) -> Result<Agents, AgentError> {
    let mut agents = Agents::default();
    for flag in flags {
        agents.add(Agent::new(
            flag.platform.clone(),
            Source::Flag,
            flag.path.clone(),
        ));
    }
    for dir in directories() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<_> = entries.filter_map(Result::ok).collect();
        found.sort_by_key(|e| e.file_name());
        for entry in found {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(platform) = platform_of(&name) else {
                continue;
            };
            let path = entry.path().join("mitogen-fakessh");
            if !path.is_file() {
                continue;
            }
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            agents.add(match distrust(&path) {
                None => Agent::new(platform, Source::Directory, path),
                Some(why) => {
                    let refusal = AgentError::Distrusted {
                        path: path.clone(),
                        why,
                    };
                    Agent::refused(platform, Source::Directory, path, refusal)
                }
            });
        }
    }
    agents.add_own();
    Ok(agents)
}

/// Why the agent at `path` (canonical) could be replaced by another local
/// user, if it could: it and every directory above it must belong to root
/// or to us and be writable by nobody else, but for a sticky directory of
/// root's such as /tmp (where only a name's owner can replace it, and that
/// owner is checked next). What we upload runs on every host we reach.
fn distrust(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    for (at, place) in path.ancestors().enumerate() {
        let named = match at {
            0 => "it".to_string(),
            _ => place.display().to_string(),
        };
        let meta = match std::fs::metadata(place) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("cannot check {named}: {e}")),
        };
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if owner != 0 && owner != me {
            return Some(format!("{named} belongs to uid {owner}"));
        }
        let sticky_of_root = at > 0 && owner == 0 && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_of_root {
            return Some(format!("{named} is writable by others (mode {mode:o})"));
        }
    }
    None
}

/// `linux-aarch64` → `Linux aarch64` (what `uname -sm` prints there).
fn platform_of(directory: &str) -> Option<String> {
    let (os, machine) = directory.split_once('-')?;
    let mut letters = os.chars();
    let first = letters.next()?;
    (!machine.is_empty()).then(|| {
        format!(
            "{}{} {machine}",
            first.to_ascii_uppercase(),
            letters.as_str()
        )
    })
}

/// The agents directories, in the order they are searched.
fn directories() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(AGENTS_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        // target/release/mitogen-fakessh → target/agents
        dirs.push(exe_dir.join("../agents"));
        // /usr/local/bin/mitogen-fakessh → /usr/local/lib/mitogen-fakessh/agents
        dirs.push(exe_dir.join("../lib/mitogen-fakessh/agents"));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ssh_config::home_dir().join(".local/share"));
    dirs.push(data.join("mitogen-fakessh/agents"));
    dirs
}

/// `mitogen-fakessh agents`: every agent this host can upload, in order
/// of preference, with its platform, size unpacked and gzip'd (what goes
/// over the wire), SHA-256 and where it comes from; one a platform already
/// has is marked `(fallback)`. An agent that cannot be used is named on
/// stderr with the reason, and the status is then 1.
pub fn print_list(flags: &[AgentFlag]) -> i32 {
    let agents = match discover(flags) {
        Ok(agents) => agents,
        Err(e) => {
            crate::logging::stderr_line(&format!("mitogen-fakessh: {e}"));
            return 255;
        }
    };
    let mut status = 0;
    let mut served: Vec<&str> = Vec::new();
    println!(
        "{:<16} {:>9} {:>9}  {:<64}  SOURCE",
        "PLATFORM", "SIZE", "UPLOAD", "SHA256"
    );
    for agent in agents.all() {
        match agent.image().and_then(|image| Ok((image, agent.gzip()?))) {
            Ok((image, gz)) => {
                let fallback = match served.contains(&agent.platform.as_str()) {
                    true => " (fallback)",
                    false => "",
                };
                served.push(&agent.platform);
                println!(
                    "{:<16} {:>9} {:>9}  {}  {}{fallback}",
                    agent.platform,
                    image.size,
                    gz.len(),
                    image.sha256,
                    describe(agent),
                );
            }
            Err(e) => {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                crate::logging::stderr_line(&format!("mitogen-fakessh: {}: {e}", agent.platform));
                status = 1;
            }
        }
    }
    status
}

/// Where an agent came from, for people.
fn describe(agent: &Agent) -> String {
    match agent.source {
        Source::Flag => format!("--agent {}", agent.path.display()),
        Source::Directory => agent.path.display().to_string(),
        Source::ThisExecutable => match std::env::current_exe() {
            Ok(exe) => format!("this executable ({})", exe.display()),
            Err(_) => "this executable".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hop::agents::agent::this_platform;

    #[test]
    fn flags_come_first_and_this_executable_last() {
        let flag: AgentFlag = "Linux riscv64=/nonexistent".parse().unwrap();
        let agents = discover(&[flag]).unwrap();
        assert_eq!(agents.all()[0].source, Source::Flag);
        assert_eq!(agents.all().last().unwrap().source, Source::ThisExecutable);
        assert!(agents.for_platform(&this_platform()).is_some());
        // Unreadable: never offered.
        assert!(agents.for_platform("Linux riscv64").is_none());
        assert!("no-equals".parse::<AgentFlag>().is_err());
        assert!("=/x".parse::<AgentFlag>().is_err());
        assert!("Linux x=".parse::<AgentFlag>().is_err());
    }

    #[test]
    fn an_agent_others_could_replace_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let set = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let agent = dir.join("linux-x86_64/mitogen-fakessh");
        std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
        std::fs::write(&agent, b"agent").unwrap();
        set(&agent, 0o755);
        set(agent.parent().unwrap(), 0o755);
        let tmp_is_fine = distrust(&agent);
        set(&agent, 0o775);
        let group_writable = distrust(&agent);
        set(&agent, 0o755);
        set(agent.parent().unwrap(), 0o1777);
        let open_parent = distrust(&agent);
        set(agent.parent().unwrap(), 0o755);
        assert_eq!(tmp_is_fine, None, "{}", agent.display());
        assert_eq!(
            group_writable.as_deref(),
            Some("it is writable by others (mode 775)")
        );
        // Sticky, but ours rather than root's (unless we are root).
        let open_parent = open_parent.unwrap_or_default();
        match nix::unistd::geteuid().is_root() {
            true => assert_eq!(open_parent, ""),
            false => assert!(open_parent.ends_with("is writable by others (mode 1777)")),
        }
    }

    #[test]
    fn directory_names() {
        assert_eq!(
            platform_of("linux-aarch64").as_deref(),
            Some("Linux aarch64")
        );
        assert_eq!(platform_of("linux-x86_64").as_deref(), Some("Linux x86_64"));
        assert_eq!(platform_of("-x"), None);
        assert_eq!(platform_of("linux-"), None);
        assert_eq!(platform_of("linux"), None);
    }
}
