//! The state file: what a lab built and which processes it started, written before anything
//! is created, so that `down` can remove all of it after a crash and the other commands work
//! without the configuration.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::topology::Topology;

/// The default state directory: one lab at a time lives here.
pub const DEFAULT_STATE_DIR: &str = "/run/weft-lab";
/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "lab.json";
/// The version of the state file's format; a different one is refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;

/// How far `up` got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Namespaces are being created or gateways started; a crash leaves this behind.
    Building,
    /// Everything was built (and the gateways started, unless `--no-gateways`).
    Up,
}

/// Everything about one lab, as kept in `<state dir>/lab.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The prefix of every namespace of the lab.
    pub prefix: String,
    /// How far `up` got.
    pub phase: Phase,
    /// When `up` started, in seconds since the Unix epoch.
    pub created_unix: u64,
    /// The configuration layers it was built from, absolute.
    pub config: Vec<PathBuf>,
    /// Whether gateways were started (false with `--no-gateways`).
    pub gateways_started: bool,
    /// What was built.
    pub topology: Topology,
    /// The `weft run` processes, recorded as each starts.
    pub gateways: Vec<GatewayProcess>,
}

/// One `weft run` a lab started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayProcess {
    /// The gateway's name.
    pub name: String,
    /// The namespace it runs in.
    pub namespace: String,
    /// Its process id.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22), so that a pid
    /// reused by another process is never signalled.
    pub start_time: u64,
    /// Its control socket.
    pub control_socket: PathBuf,
    /// Its standard output and error.
    pub log: PathBuf,
    /// The copy of its private key it reads.
    pub key_file: PathBuf,
    /// Its WireGuard UAPI name.
    pub uapi_name: String,
}

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The state file is not JSON of the expected shape.
    #[error("{path} is not a weft lab state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The state file was written by an incompatible weft.
    #[error("{path} has state format {found}; this weft reads format {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A lab is already up in the directory.
    #[error(
        "a lab is already up in {dir} (namespaces {prefix}*); run `weft lab down{dir_flag}` first"
    )]
    AlreadyUp {
        /// The state directory.
        dir: PathBuf,
        /// Its prefix.
        prefix: String,
        /// ` --state-dir DIR` when not the default.
        dir_flag: String,
    },
}

/// A state directory: where a lab's state file, key copies, control sockets and logs live.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The state directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Where gateway private keys are copied to (mode 0700).
    pub fn keys_dir(&self) -> PathBuf {
        self.path.join("keys")
    }

    /// The copy of gateway `name`'s private key.
    pub fn key_file(&self, name: &str) -> PathBuf {
        self.keys_dir().join(format!("{name}.key"))
    }

    /// The control socket of gateway `name`.
    pub fn control_socket(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.sock"))
    }

    /// The log of gateway `name`.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.log"))
    }

    /// ` --state-dir DIR` when this is not the default directory, for hints.
    pub fn flag(&self) -> String {
        if self.path == Path::new(DEFAULT_STATE_DIR) {
            String::new()
        } else {
            format!(" --state-dir {}", self.path.display())
        }
    }

    /// Creates the directory (mode 0700: it holds key copies) if it does not exist.
    pub fn ensure(&self) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| StateError::Io {
                action: "creating",
                path: self.path.clone(),
                source,
            })
    }

    /// Records a new lab. Fails with [`StateError::AlreadyUp`] when a state file exists: the
    /// file is created exclusively, so two `up`s racing for one directory cannot both win.
    pub fn create(&self, state: &LabState) -> Result<(), StateError> {
        let path = self.state_file();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let prefix = match self.load() {
                    Ok(Some(s)) => s.prefix,
                    _ => "?".to_owned(),
                };
                return Err(StateError::AlreadyUp {
                    dir: self.path.clone(),
                    prefix,
                    dir_flag: self.flag(),
                });
            }
            Err(source) => {
                return Err(StateError::Io {
                    action: "creating",
                    path,
                    source,
                });
            }
        };
        let io = |source| StateError::Io {
            action: "writing",
            path: path.clone(),
            source,
        };
        file.write_all(&to_json(state)).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Replaces the state file atomically (a temporary file renamed over it), so a crash
    /// leaves either the old or the new state, never half of one.
    pub fn save(&self, state: &LabState) -> Result<(), StateError> {
        let path = self.state_file();
        let tmp = self.path.join(format!(".{STATE_FILE}.tmp"));
        let io = |action, source| StateError::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("writing", e))?;
        file.write_all(&to_json(state))
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing", e))?;
        fs::rename(&tmp, &path).map_err(|e| io("replacing", e))
    }

    /// The lab recorded here, or `None` when no lab is up in this directory.
    pub fn load(&self) -> Result<Option<LabState>, StateError> {
        let path = self.state_file();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        parse(&text, &path).map(Some)
    }

    /// Removes the state file and what lives beside it for the lab (key copies, control
    /// sockets); gateway logs stay for a post-mortem until the next `up` replaces them.
    pub fn remove(&self, state: Option<&LabState>) -> Result<(), StateError> {
        let ignore_missing = |r: io::Result<()>, path: PathBuf| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError::Io {
                action: "removing",
                path,
                source: e,
            }),
            _ => Ok(()),
        };
        if let Some(state) = state {
            for g in &state.gateways {
                ignore_missing(fs::remove_file(&g.control_socket), g.control_socket.clone())?;
            }
        }
        ignore_missing(fs::remove_dir_all(self.keys_dir()), self.keys_dir())?;
        let tmp = self.path.join(format!(".{STATE_FILE}.tmp"));
        ignore_missing(fs::remove_file(&tmp), tmp)?;
        ignore_missing(fs::remove_file(self.state_file()), self.state_file())
    }
}

fn to_json(state: &LabState) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(state).expect("the state serializes");
    out.push(b'\n');
    out
}

/// Reads a state file's text, checking its format version first so that a file of another
/// version is reported as such rather than as a shape mismatch.
pub fn parse(text: &[u8], path: &Path) -> Result<LabState, StateError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let corrupt = |source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let v: Versioned = serde_json::from_slice(text).map_err(corrupt)?;
    if v.version != FORMAT_VERSION {
        return Err(StateError::Version {
            path: path.to_owned(),
            found: v.version,
        });
    }
    serde_json::from_slice(text).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weft_config::Loader;

    use super::*;

    fn state() -> LabState {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
        let intent = Loader::new().env_prefix(None).file(&path).load().unwrap();
        let topology = Topology::build(&intent, "wl0abc-").unwrap();
        LabState {
            version: FORMAT_VERSION,
            prefix: "wl0abc-".into(),
            phase: Phase::Building,
            created_unix: 1_700_000_000,
            config: vec![path],
            gateways_started: true,
            topology,
            gateways: vec![GatewayProcess {
                name: "aws-gw".into(),
                namespace: "wl0abc-gw-aws-gw".into(),
                pid: 4242,
                start_time: 123_456,
                control_socket: "/run/weft-lab/aws-gw.sock".into(),
                log: "/run/weft-lab/aws-gw.log".into(),
                key_file: "/run/weft-lab/keys/aws-gw.key".into(),
                uapi_name: "wl0abc-0".into(),
            }],
        }
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("lab"));
        sd.ensure().unwrap();
        assert!(sd.load().unwrap().is_none());
        let mut s = state();
        sd.create(&s).unwrap();
        assert_eq!(sd.load().unwrap().as_ref(), Some(&s));
        s.phase = Phase::Up;
        sd.save(&s).unwrap();
        assert_eq!(sd.load().unwrap(), Some(s.clone()));
        let text = fs::read_to_string(sd.state_file()).unwrap();
        assert!(text.contains("\"phase\": \"up\""), "{text}");
        assert!(text.contains("\"prefix\": \"wl0abc-\""), "{text}");
        sd.remove(Some(&s)).unwrap();
        assert!(sd.load().unwrap().is_none());
        sd.remove(Some(&s)).unwrap();
    }

    #[test]
    fn a_second_lab_in_one_directory_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        sd.create(&state()).unwrap();
        let e = sd.create(&state()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, StateError::AlreadyUp { .. }));
        assert!(text.contains("wl0abc-*"), "{text}");
        assert!(
            text.contains(&format!(
                "weft lab down --state-dir {}",
                dir.path().display()
            )),
            "{text}"
        );
    }

    #[test]
    fn files_of_another_version_or_shape_are_refused() {
        let p = Path::new("lab.json");
        let e = parse(br#"{"version": 99}"#, p).unwrap_err();
        assert!(matches!(e, StateError::Version { found: 99, .. }), "{e}");
        let e = parse(b"not json", p).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        let e = parse(br#"{"version": 1}"#, p).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
    }

    #[test]
    fn the_default_directory_needs_no_flag_in_hints() {
        assert_eq!(StateDir::new(DEFAULT_STATE_DIR).flag(), "");
        assert_eq!(StateDir::new("/tmp/x").flag(), " --state-dir /tmp/x");
    }
}
