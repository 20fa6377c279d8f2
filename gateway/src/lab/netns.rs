//! Network namespaces as the lab uses them: `ip` builds and deletes them, and a dedicated
//! thread that enters one (setns) opens sockets and writes sysctls there. A socket stays in
//! the namespace it was created in, whichever thread uses it later, and nothing here ever
//! changes the calling thread's namespace, so the host's network is never touched.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The `ip` program could not be started.
    #[error("cannot run `ip`: {0} (the lab needs iproute2)")]
    Spawn(io::Error),
    /// `ip` ran and refused.
    #[error("`ip {args}` failed: {stderr}")]
    Command {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// The namespace does not exist or cannot be opened.
    #[error("cannot open network namespace `{name}`: {source}")]
    Open {
        /// The namespace.
        name: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Entering the namespace was refused.
    #[error("cannot enter network namespace `{name}`: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// What the OS said.
        source: nix::Error,
    },
    /// A sysctl could not be written.
    #[error("cannot set {key} = {value} in network namespace `{name}`: {source}")]
    Sysctl {
        /// The namespace.
        name: String,
        /// The sysctl, dotted.
        key: String,
        /// The value.
        value: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// Runs `ip ARGS...` and returns its standard output.
pub fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(NetnsError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -n NAMESPACE ARGS...`: the command acts inside the namespace only.
pub fn ip_in(namespace: &str, args: &[&str]) -> Result<String, NetnsError> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    ip(&all)
}

/// Creates a named namespace.
pub fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name]).map(drop)
}

/// Deletes a named namespace; `Ok(false)` when there was none.
pub fn delete(name: &str) -> Result<bool, NetnsError> {
    if !path(name).exists() {
        return Ok(false);
    }
    match ip(&["netns", "delete", name]) {
        Ok(_) => Ok(true),
        Err(_) if !path(name).exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The named namespaces of the host (what `ip netns list` shows), sorted.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The file of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Runs `f` on a new thread that has entered namespace `name`, and returns what it returns.
/// Sockets `f` creates belong to that namespace for their whole life.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(path(name)).map_err(|source| NetnsError::Open {
        name: name.to_owned(),
        source,
    })?;
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name(format!("netns {name}"))
            .spawn_scoped(s, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                    name: name.to_owned(),
                    source,
                })?;
                Ok(f())
            })
            .map_err(|source| NetnsError::Open {
                name: name.to_owned(),
                source,
            })?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Sets the sysctl `net.<path...>` (e.g. `["ipv4", "ip_forward"]`) inside namespace `name`:
/// `/proc/sys/net` shows the namespace of the thread that opens it.
pub fn set_sysctl(name: &str, path: &[&str], value: &str) -> Result<(), NetnsError> {
    let key = format!("net.{}", path.join("."));
    let file: PathBuf = ["/proc/sys/net"].iter().chain(path).collect();
    in_netns(name, || {
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| f.write_all(value.as_bytes()))
    })?
    .map_err(|source| NetnsError::Sysctl {
        name: name.to_owned(),
        key,
        value: value.to_owned(),
        source,
    })
}

/// The identity (device and inode) of a named namespace, as processes inside it see it in
/// `/proc/PID/ns/net`.
pub fn identity(name: &str) -> Option<(u64, u64)> {
    fs::metadata(path(name)).ok().map(|m| (m.dev(), m.ino()))
}

/// Every process living in one of the namespaces with these identities (except this one).
pub fn processes_in(namespaces: &[(u64, u64)]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(proc) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| namespaces.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        })
        .collect()
}
