//! An agent executable (its platform, where it came from, its bytes,
//! checksum and gzip'd form, each computed once) and the set of them a
//! process can upload.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

/// Environment variable naming an agents directory to look in first.
pub const AGENTS_ENV: &str = "MITOGEN_FAKESSH_AGENTS";

/// Where an agent was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--agent PLATFORM=PATH`.
    Flag,
    /// An agents directory.
    Directory,
    /// This executable.
    ThisExecutable,
}

/// Why an agent cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read the agent image {}: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    #[error(
        "{} was built from other sources than this mitogen-fakessh (it may speak another protocol): rebuild it with ./build-agents",
        .0.display()
    )]
    OtherBuild(PathBuf),
    #[error("{} is not used: {why} (another user could replace it)", .path.display())]
    Distrusted { path: PathBuf, why: String },
}

/// An agent executable, hashed and compressed when first needed.
#[derive(Debug)]
pub struct Agent {
    /// `uname -sm` of the machines it runs on, e.g. `Linux aarch64`.
    pub platform: String,
    pub source: Source,
    pub path: PathBuf,
    image: OnceLock<Result<Arc<Image>, AgentError>>,
    gzip: OnceLock<Result<Arc<Vec<u8>>, AgentError>>,
    /// Whether why it cannot be used was said already.
    reported: std::sync::atomic::AtomicBool,
}

/// What the bootstrap needs of an agent: its checksum and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub platform: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Every agent this process can upload.
#[derive(Debug, Default, Clone)]
pub struct Agents {
    list: Vec<Arc<Agent>>,
}

/// `uname -sm` of this machine, as our own build targets it.
pub fn this_platform() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        other => other,
    };
    let machine = match std::env::consts::ARCH {
        "arm" => "armv7l",
        "x86" => "i686",
        other => other,
    };
    format!("{os} {machine}")
}

impl Agent {
    pub(crate) fn new(platform: String, source: Source, path: PathBuf) -> Arc<Agent> {
        Arc::new(Agent {
            platform,
            source,
            path,
            image: OnceLock::new(),
            gzip: OnceLock::new(),
            reported: Default::default(),
        })
    }

    /// One that is never used, for `why`.
    #[cfg(feature = "host")]
    pub(crate) fn refused(
        platform: String,
        source: Source,
        path: PathBuf,
        why: AgentError,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            platform,
            source,
            path,
            image: OnceLock::from(Err(why)),
            gzip: OnceLock::new(),
            reported: Default::default(),
        })
    }

    /// Size and checksum (read and hashed the first time).
    pub fn image(&self) -> Result<Arc<Image>, AgentError> {
        self.image
            .get_or_init(|| {
                let bytes = self.raw()?;
                // Our own bytes are our build; any other agent must say so.
                if self.source != Source::ThisExecutable
                    && memchr::memmem::find(&bytes, crate::roles::BUILD_STAMP.as_bytes()).is_none()
                {
                    return Err(AgentError::OtherBuild(self.path.clone()));
                }
                Ok(Arc::new(Image {
                    platform: self.platform.clone(),
                    path: self.path.clone(),
                    size: bytes.len() as u64,
                    sha256: hex(&Sha256::digest(&bytes)),
                }))
            })
            .clone()
    }

    /// The gzip'd bytes: the `.gz` beside the agent if its trailer says
    /// it holds exactly the agent, else compressed now.
    pub fn gzip(&self) -> Result<Arc<Vec<u8>>, AgentError> {
        self.gzip
            .get_or_init(|| {
                let raw = self.raw()?;
                let mut beside = self.path.clone().into_os_string();
                beside.push(".gz");
                match std::fs::read(&beside) {
                    Ok(gz) if gzip_trailer_matches(&gz, &raw) => Ok(Arc::new(gz)),
                    _ => self.compress(&raw).map(Arc::new),
                }
            })
            .clone()
    }

    /// Compressed now, whatever lies beside it (for a second attempt,
    /// after the first arrived corrupted).
    pub fn gzip_fresh(&self) -> Result<Vec<u8>, AgentError> {
        self.compress(&self.raw()?)
    }

    /// The executable's bytes.
    pub fn raw(&self) -> Result<Vec<u8>, AgentError> {
        std::fs::read(&self.path).map_err(|e| self.read_error(e))
    }

    fn compress(&self, raw: &[u8]) -> Result<Vec<u8>, AgentError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, raw)
            .and_then(|_| gz.finish())
            .map_err(|e| self.read_error(e))
    }

    fn read_error(&self, e: std::io::Error) -> AgentError {
        AgentError::Read {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a gzip file's trailer (RFC 1952: CRC-32, then the size modulo
/// 2^32, little-endian) describes `raw`. The remote checks the SHA-256
/// after decompressing; this only keeps a stale `.gz` from being sent.
fn gzip_trailer_matches(gz: &[u8], raw: &[u8]) -> bool {
    let Some(trailer) = gz.len().checked_sub(8).map(|at| &gz[at..]) else {
        return false;
    };
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    gz.starts_with(&[0x1f, 0x8b]) && size == raw.len() as u32 && crc == crc32fast::hash(raw)
}

impl Agents {
    /// Only this executable (what an agent can give the hop after it).
    pub fn own() -> Agents {
        let mut agents = Agents::default();
        agents.add_own();
        agents
    }

    pub(crate) fn add_own(&mut self) {
        // On Linux /proc/self/exe: still our bytes even if the file was
        // replaced.
        self.add(Agent::new(
            this_platform(),
            Source::ThisExecutable,
            crate::sys::own_executable(),
        ));
    }

    pub(crate) fn add(&mut self, agent: Arc<Agent>) {
        let same = |a: &Arc<Agent>| a.platform == agent.platform && a.path == agent.path;
        if !self.list.iter().any(same) {
            self.list.push(agent);
        }
    }

    /// Every agent found, in order of preference (a platform may have
    /// several: the first usable one is uploaded).
    pub fn all(&self) -> &[Arc<Agent>] {
        &self.list
    }

    /// The agent to upload for `platform` (`uname -sm`): the first one
    /// found that can be read and comes from this build.
    pub fn for_platform(&self, platform: &str) -> Option<&Arc<Agent>> {
        self.list
            .iter()
            .find(|a| a.platform == platform && a.image().is_ok())
    }

    /// Why the agents found for `platform` cannot be used (the first's
    /// reason), if there are any.
    pub fn why_not(&self, platform: &str) -> Option<AgentError> {
        self.list
            .iter()
            .filter(|a| a.platform == platform)
            .find_map(|a| a.image().err())
    }

    /// Read and hash now (blocking) the agents that would be offered, so
    /// that the bootstrap finds it done, and compress those built for
    /// uploading (`./build-agents` leaves a `.gz` beside them; this
    /// executable, a fallback, is compressed only if asked for). Errors
    /// are kept for when the bootstrap asks.
    pub fn prefetch(&self) {
        let mut done: Vec<&str> = Vec::new();
        for agent in &self.list {
            if done.contains(&agent.platform.as_str()) || agent.image().is_err() {
                continue;
            }
            done.push(&agent.platform);
            if agent.source != Source::ThisExecutable {
                let _ = agent.gzip();
            }
        }
    }

    /// The images of the agents [`for_platform`](Self::for_platform)
    /// would upload, one per platform; reads and hashes them (blocking)
    /// the first time. An agent that cannot be used is reported once
    /// (`report`) and passed over; if nothing is left, that is the error.
    pub fn usable(&self, report: impl Fn(&AgentError)) -> Result<Vec<Arc<Image>>, AgentError> {
        let mut images: Vec<Arc<Image>> = Vec::new();
        let mut first_error = None;
        for agent in &self.list {
            if images.iter().any(|i| i.platform == agent.platform) {
                continue;
            }
            match agent.image() {
                Ok(image) => images.push(image),
                Err(e) => {
                    if !agent
                        .reported
                        .swap(true, std::sync::atomic::Ordering::Relaxed)
                    {
                        report(&e);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        match (images.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(images),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_image_gzips_back_to_itself() {
        assert!(this_platform().starts_with("Linux "));
        let own = Agents::own();
        let agent = own.for_platform(&this_platform()).unwrap();
        let image = agent.image().unwrap();
        let gz = agent.gzip().unwrap();
        assert!((gz.len() as u64) < image.size);
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unpacked)
            .unwrap();
        assert_eq!(hex(&Sha256::digest(&unpacked)), image.sha256);
        assert!(gzip_trailer_matches(&gz, &unpacked));
        assert!(!gzip_trailer_matches(&gz, &unpacked[1..]));
        assert!(!gzip_trailer_matches(&gz[..4], &unpacked));
    }

    #[test]
    fn an_agent_of_another_build_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("mitogen-fakessh");
        std::fs::write(&other, b"\x7fELF not this build").unwrap();
        let mut agents = Agents::default();
        agents.add(Agent::new(
            this_platform(),
            Source::Directory,
            other.clone(),
        ));
        agents.add_own();
        let reported = std::sync::Mutex::new(Vec::new());
        let images = agents
            .usable(|e| reported.lock().unwrap().push(e.to_string()))
            .unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].path, PathBuf::from("/proc/self/exe"));
        let reported = reported.into_inner().unwrap();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(reported[0].contains("rebuild it with ./build-agents"));
        // Said once only.
        agents.usable(|e| panic!("reported twice: {e}")).unwrap();
    }
}
