//! Network namespaces for tests and for `weft lab`: make and remove named namespaces, and run
//! code inside one without ever moving the calling thread or the host.
//!
//! Named namespaces are the ones `ip netns` manages: a bind mount under [`NETNS_DIR`] keeps
//! each alive, so creating and deleting them goes through `ip netns add` / `ip netns del`.
//! Entering one happens with `setns(2)` on a dedicated, short-lived thread: a network
//! namespace is a per-thread attribute on Linux, so only that thread moves, and it ends when
//! the closure returns. Sockets, netlink connections and TUN devices opened on that thread
//! belong to the namespace for their whole life, even when used from other threads later.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};
use thiserror::Error;

/// Where `ip netns` keeps the bind mounts that name namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The prefix of namespaces made by [`NetnsGuard`]; [`sweep_stale`] only ever deletes names
/// that carry it.
pub const GUARD_PREFIX: &str = "wft-";

/// Why a namespace operation failed, naming the namespace.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// The name is empty, too long for a file name, or contains `/` or a NUL.
    #[error("invalid network namespace name {name:?}")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A command (`ip ...`) could not be started.
    #[error("cannot run `{command}`: {source} (network namespaces need iproute2's `ip`)")]
    Spawn {
        /// The command line.
        command: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote on standard error.
        stderr: String,
    },
    /// The namespace's file could not be opened (it probably does not exist).
    #[error("cannot open network namespace {name:?} at {}: {source}", path.display())]
    Open {
        /// The namespace.
        name: String,
        /// Its bind mount.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// `setns(2)` failed on the dedicated thread.
    #[error("cannot enter network namespace {name:?}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// The system error.
        #[source]
        source: nix::Error,
    },
    /// The dedicated thread, or the async runtime on it, could not be started.
    #[error("cannot start a thread or runtime for network namespace {name:?}: {source}")]
    Thread {
        /// The namespace.
        name: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

fn check_name(name: &str) -> Result<(), NetnsError> {
    if name.is_empty()
        || name.len() > 200
        || name == "."
        || name == ".."
        || name.contains(['/', '\0'])
    {
        return Err(NetnsError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The bind mount that names namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether a named namespace `name` exists.
pub fn exists(name: &str) -> bool {
    check_name(name).is_ok() && path(name).exists()
}

/// Runs `program args...`, returning its standard output; a non-zero exit is an error
/// carrying standard error.
fn run_command(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetnsError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Creates the named network namespace `name` (`ip netns add`) with its loopback up, so that
/// code inside can use local addresses like on a host.
pub fn create(name: &str) -> Result<(), NetnsError> {
    check_name(name)?;
    run_command("ip", &["netns", "add", name])?;
    run_command("ip", &["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes the named network namespace `name` (`ip netns del`); `Ok(false)` when there was
/// none, so that removing what may be half-built needs no check first. The namespace itself
/// goes away once nothing inside holds it (open sockets, TUN descriptors, threads in it).
pub fn delete(name: &str) -> Result<bool, NetnsError> {
    check_name(name)?;
    if !path(name).exists() {
        return Ok(false);
    }
    match run_command("ip", &["netns", "del", name]) {
        Ok(_) => Ok(true),
        // Deleted meanwhile by someone else.
        Err(_) if !path(name).exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `ip -n NAME args...` and returns its standard output: the way tests and the lab
/// configure and inspect a namespace from outside it.
pub fn ip(name: &str, args: &[&str]) -> Result<String, NetnsError> {
    check_name(name)?;
    let mut full = vec!["-n", name];
    full.extend_from_slice(args);
    run_command("ip", &full)
}

/// Runs `program args...` inside namespace `name` (`ip netns exec`), returning standard
/// output. Used for tools that have no `-n` of their own, like `sysctl`.
pub fn exec(name: &str, program: &str, args: &[&str]) -> Result<String, NetnsError> {
    check_name(name)?;
    let mut full = vec!["netns", "exec", name, program];
    full.extend_from_slice(args);
    run_command("ip", &full)
}

/// Runs `f` on a new thread that has entered network namespace `name`, and returns its
/// result.
///
/// Only that thread changes namespace: the caller's thread and the rest of the process stay
/// where they are, and the thread ends with `f`. A panic in `f` is resumed on the caller,
/// so test assertions inside work as usual.
pub fn run_in<F, T>(name: &str, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    check_name(name)?;
    let ns_path = path(name);
    let file = File::open(&ns_path).map_err(|source| NetnsError::Open {
        name: name.to_owned(),
        path: ns_path,
        source,
    })?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn_scoped(scope, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
                    name: name.to_owned(),
                    source,
                })?;
                drop(file);
                Ok(f())
            })
            .map_err(|source| NetnsError::Thread {
                name: name.to_owned(),
                source,
            })?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs the future made by `f` to completion on a current-thread tokio runtime, on a thread
/// inside namespace `name` (see [`run_in`]).
///
/// Everything the future opens (rtnetlink connections, TUN devices, sockets) lives in that
/// namespace. `f` builds the future on the namespace thread, so the future need not be
/// `Send`.
pub fn block_on_in<F, Fut, T>(name: &str, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
    T: Send,
{
    let owned = name.to_owned();
    run_in(name, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| NetnsError::Thread {
                name: owned,
                source,
            })?;
        Ok(runtime.block_on(f()))
    })?
}

/// Deletes namespaces left by [`NetnsGuard`]s of processes that no longer exist (a test run
/// that was killed before its guards dropped), and returns how many it deleted.
///
/// Only names `wft-<pid>-...` whose `<pid>` is not a running process are touched, so
/// concurrent test runs keep theirs.
pub fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return 0;
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(GUARD_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && matches!(delete(&name), Ok(true))
        {
            deleted += 1;
        }
    }
    deleted
}

/// A named network namespace that exists as long as this value: made with a unique name
/// `wft-<pid>-<counter>-<label>` and deleted on drop, also when a test panics.
///
/// Tests build their topology inside one so that they never touch the host's interfaces,
/// routes or rules, and can run in parallel.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates a fresh namespace whose name ends with `label` (keep it short and readable,
    /// e.g. `gw` or `peer-a`). The first guard of a process also sweeps namespaces left by
    /// dead test processes ([`sweep_stale`]).
    pub fn new(label: &str) -> Result<Self, NetnsError> {
        static SWEEP: Once = Once::new();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        SWEEP.call_once(|| {
            sweep_stale();
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{GUARD_PREFIX}{}-{n}-{label}", std::process::id());
        create(&name)?;
        Ok(Self { name })
    }

    /// The namespace's name, for `ip -n` and friends.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`run_in`] this namespace.
    pub fn run<F, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_in(&self.name, f)
    }

    /// [`block_on_in`] this namespace.
    pub fn block_on<F, Fut, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        block_on_in(&self.name, f)
    }

    /// [`ip`] in this namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        ip(&self.name, args)
    }

    /// [`exec`] in this namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, NetnsError> {
        exec(&self.name, program, args)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        match delete(&self.name) {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "warning: network namespace {} was already deleted",
                self.name
            ),
            Err(e) => eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            ),
        }
    }
}
