//! Starting one `weft run` per gateway inside its namespace, and waiting until each serves
//! its control socket.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process;
use super::state::{GatewayProcess, StateDir};
use super::topology::GatewayNode;

/// How long `up` waits for every gateway's control socket.
pub const SOCKET_WAIT: Duration = Duration::from_secs(20);

/// Why a gateway could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Its private key could not be copied for it.
    #[error("copying the private key of gateway `{gateway}` from {from} to {to}: {source}")]
    Key {
        /// The gateway.
        gateway: String,
        /// The configured key file.
        from: PathBuf,
        /// The copy.
        to: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Its log file could not be created.
    #[error("creating the log {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The process could not be started.
    #[error("starting `weft run` for gateway `{gateway}`: {source}")]
    Spawn {
        /// The gateway.
        gateway: String,
        /// What the OS said.
        source: io::Error,
    },
    /// It exited before serving its control socket.
    #[error(
        "gateway `{gateway}` exited ({status}) before serving its control socket; its log {log} ends:\n{tail}"
    )]
    Exited {
        /// The gateway.
        gateway: String,
        /// How it ended.
        status: String,
        /// Its log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// It did not serve its control socket in time.
    #[error(
        "gateway `{gateway}` did not create {socket} within {seconds} s; its log {log} ends:\n{tail}"
    )]
    NoSocket {
        /// The gateway.
        gateway: String,
        /// The socket expected.
        socket: PathBuf,
        /// How long was waited.
        seconds: u64,
        /// Its log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
}

/// The environment variable that points gateway `name` at its private key file: the config
/// loader lowercases variable names and splits them on `__`.
pub fn key_env_var(name: &str) -> String {
    format!("WEFT_GATEWAYS__{}__PRIVATE_KEY_FILE", name.to_uppercase())
}

/// The arguments of `weft run` for one gateway.
pub fn run_args(config: &[PathBuf], gateway: &str, socket: &Path, uapi_name: &str) -> Vec<String> {
    let mut args = vec!["run".to_owned()];
    for c in config {
        args.push("-c".to_owned());
        args.push(c.display().to_string());
    }
    args.extend([
        "--gateway".to_owned(),
        gateway.to_owned(),
        "--control".to_owned(),
        socket.display().to_string(),
        "--uapi-name".to_owned(),
        uapi_name.to_owned(),
    ]);
    args
}

/// Copies the gateway's configured key to `<state>/keys/<name>.key`, mode 0600.
fn copy_key(dir: &StateDir, name: &str, from: &Path) -> Result<PathBuf, GatewayError> {
    let to = dir.key_file(name);
    let err = |source| GatewayError::Key {
        gateway: name.to_owned(),
        from: from.to_owned(),
        to: to.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.keys_dir())
        .map_err(err)?;
    let key = fs::read(from).map_err(err)?;
    let _ = fs::remove_file(&to);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&to)
        .map_err(err)?;
    io::Write::write_all(&mut file, &key).map_err(err)?;
    // The mode given at creation is masked by the umask; make it exactly 0600.
    fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(to)
}

/// A started gateway: its record for the state file and the child handle, which tells of an
/// early exit (a dead child of this process stays a zombie until waited for).
pub struct Started {
    /// What the state file keeps.
    pub record: GatewayProcess,
    /// The process.
    pub child: Child,
}

/// What becomes of a gateway's log when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    /// A new log (`up`): whatever an earlier lab left there is replaced.
    Replace,
    /// Appended to (`restart`): the log of the process before stays for a post-mortem.
    Append,
}

/// Starts `weft run` for `node` in its namespace: `ip netns exec NS WEFT run ...`, output to
/// its log, in a process group of its own so that a Ctrl-C to `weft lab up` leaves it be.
pub fn start(
    dir: &StateDir,
    weft: &Path,
    config: &[PathBuf],
    node: &GatewayNode,
    key_file: &Path,
    log_mode: LogMode,
) -> Result<Started, GatewayError> {
    let key = copy_key(dir, &node.name, key_file)?;
    let socket = dir.control_socket(&node.name);
    let _ = fs::remove_file(&socket);
    let log_path = dir.log_file(&node.name);
    let log_err = |source| GatewayError::Log {
        path: log_path.clone(),
        source,
    };
    let log = match log_mode {
        LogMode::Replace => File::create(&log_path),
        LogMode::Append => OpenOptions::new().create(true).append(true).open(&log_path),
    }
    .map_err(log_err)?;
    let log2 = log.try_clone().map_err(log_err)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.namespace])
        .arg(weft)
        .args(run_args(config, &node.name, &socket, &node.uapi_name))
        .env(key_env_var(&node.name), &key)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    let child = cmd.spawn().map_err(|source| GatewayError::Spawn {
        gateway: node.name.clone(),
        source,
    })?;
    let pid = child.id() as i32;
    // `ip netns exec` replaces itself with weft: the pid stays the gateway's.
    let start_time = process::stat(pid).map_or(0, |s| s.start_time);
    Ok(Started {
        record: GatewayProcess {
            name: node.name.clone(),
            namespace: node.namespace.clone(),
            pid,
            start_time,
            control_socket: socket,
            log: log_path,
            key_file: key,
            uapi_name: node.uapi_name.clone(),
        },
        child,
    })
}

/// Waits until every gateway has created its control socket, at most `limit`; reports the
/// first that exited or did not make it, with the end of its log.
pub fn wait_for_sockets(started: &mut [Started], limit: Duration) -> Result<(), GatewayError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all_ready = true;
        for s in started.iter_mut() {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(GatewayError::Exited {
                    gateway: s.record.name.clone(),
                    status: status.to_string(),
                    log: s.record.log.clone(),
                    tail: tail(&s.record.log, 15),
                });
            }
            all_ready &= s.record.control_socket.exists();
        }
        if all_ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let late = started
                .iter()
                .find(|s| !s.record.control_socket.exists())
                .expect("one is not ready");
            return Err(GatewayError::NoSocket {
                gateway: late.record.name.clone(),
                socket: late.record.control_socket.clone(),
                seconds: limit.as_secs(),
                log: late.record.log.clone(),
                tail: tail(&late.record.log, 15),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last `lines` lines of a file, indented, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    if all.is_empty() {
        return "    (empty)".to_owned();
    }
    all[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_variable_reaches_the_gateways_private_key_file() {
        assert_eq!(
            key_env_var("aws-gw"),
            "WEFT_GATEWAYS__AWS-GW__PRIVATE_KEY_FILE"
        );
        // What the config loader makes of it: lowercase, split on `__`.
        let path: Vec<String> = key_env_var("aws-gw")["WEFT_".len()..]
            .to_lowercase()
            .split("__")
            .map(str::to_owned)
            .collect();
        assert_eq!(path, ["gateways", "aws-gw", "private_key_file"]);
    }

    #[test]
    fn weft_run_gets_every_layer_and_its_names() {
        let args = run_args(
            &["/a.toml".into(), "/b.toml".into()],
            "aws-gw",
            Path::new("/run/weft-lab/aws-gw.sock"),
            "wl3f9a-0",
        );
        assert_eq!(
            args.join(" "),
            "run -c /a.toml -c /b.toml --gateway aws-gw --control /run/weft-lab/aws-gw.sock \
             --uapi-name wl3f9a-0"
        );
    }

    #[test]
    fn keys_are_copied_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.key");
        fs::write(&src, "secret\n").unwrap();
        let sd = StateDir::new(dir.path().join("state"));
        sd.ensure().unwrap();
        let to = copy_key(&sd, "aws-gw", &src).unwrap();
        assert_eq!(to, sd.key_file("aws-gw"));
        assert_eq!(fs::read_to_string(&to).unwrap(), "secret\n");
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second up over a stale copy replaces it.
        copy_key(&sd, "aws-gw", &src).unwrap();
    }

    #[test]
    fn tails_show_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 2), "    b\n    c");
        assert_eq!(tail(&dir.path().join("none"), 2), "    (empty)");
    }
}
