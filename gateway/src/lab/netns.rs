//! What the lab needs of network namespaces beyond [`weft_dataplane::linux::netns`] (which
//! creates and deletes them, runs `ip -n` and enters one on a dedicated thread): listing the
//! host's named namespaces, writing sysctls inside one, and finding the processes that live
//! in them. Nothing here changes the calling thread's namespace, so the host's network is
//! never touched.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use weft_dataplane::linux::netns::{NETNS_DIR, NetnsError, path, run_in};

/// Why setting up a lab namespace failed: a namespace operation or a sysctl.
#[derive(Debug, thiserror::Error)]
pub enum LabNetnsError {
    /// Creating, deleting, entering a namespace or running `ip` in it failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
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

/// Sets the sysctl `net.<path...>` (e.g. `["ipv4", "ip_forward"]`) inside namespace `name`:
/// `/proc/sys/net` shows the namespace of the thread that opens it.
pub fn set_sysctl(name: &str, path: &[&str], value: &str) -> Result<(), LabNetnsError> {
    let key = format!("net.{}", path.join("."));
    let file: PathBuf = ["/proc/sys/net"].iter().chain(path).collect();
    run_in(name, || {
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| f.write_all(value.as_bytes()))
    })?
    .map_err(|source| LabNetnsError::Sysctl {
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
