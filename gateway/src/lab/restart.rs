//! `weft lab restart GATEWAY`: stops one gateway's `weft run` (SIGTERM, then SIGKILL after
//! a grace period) and starts it again exactly as `up` did: the same namespace, arguments and
//! key variable, its output appended to the same log. The state file gets the new process.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::gateways::{self, GatewayError, LogMode, SOCKET_WAIT};
use super::process;
use super::state::{LabState, StateDir, StateError};

/// How long a gateway gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How the previous process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// It exited after SIGTERM (removing its routes and rules).
    Gracefully,
    /// It needed SIGKILL.
    Killed,
    /// It was not running any more.
    WasNotRunning,
}

/// What `restart` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Restarted {
    /// The gateway.
    pub gateway: String,
    /// The process that was stopped.
    pub old_pid: i32,
    /// How it ended.
    pub stopped: Stopped,
    /// The new process.
    pub pid: i32,
    /// Its control socket, served again.
    pub control_socket: PathBuf,
    /// Its log, appended to.
    pub log: PathBuf,
}

/// Why a gateway could not be restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The lab has no such gateway.
    #[error("lab {prefix} has no gateway `{name}`; its gateways are: {known}")]
    UnknownGateway {
        /// The name asked for.
        name: String,
        /// The lab.
        prefix: String,
        /// Its gateways.
        known: String,
    },
    /// The lab was built without gateways.
    #[error(
        "gateway `{0}` was never started (the lab was built with --no-gateways); run it by hand \
         or rebuild the lab without --no-gateways"
    )]
    NotStarted(String),
    /// The process survived SIGKILL.
    #[error("gateway `{gateway}` (pid {pid}) is still there after SIGTERM and SIGKILL")]
    Stuck {
        /// The gateway.
        gateway: String,
        /// Its pid.
        pid: i32,
    },
    /// The new process could not be started or did not serve its control socket.
    #[error(transparent)]
    Start(#[from] GatewayError),
    /// The state file could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Restarts gateway `name` of the lab in `state` (recorded in `dir`): `weft` is the binary to
/// run and `key_file` the private key the configuration names, copied for it as `up` does.
/// The state file is saved with the new pid before waiting for the control socket, so that
/// `down` finds the new process whatever happens next.
pub fn restart(
    dir: &StateDir,
    state: &mut LabState,
    weft: &Path,
    name: &str,
    key_file: &Path,
) -> Result<Restarted, RestartError> {
    let node = state
        .topology
        .gateway(name)
        .ok_or_else(|| RestartError::UnknownGateway {
            name: name.to_owned(),
            prefix: state.prefix.clone(),
            known: state
                .topology
                .gateways
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?
        .clone();
    let index = state
        .gateways
        .iter()
        .position(|g| g.name == name)
        .ok_or_else(|| RestartError::NotStarted(name.to_owned()))?;
    let old = state.gateways[index].clone();

    let ended = process::terminate(&[(old.pid, Some(old.start_time))], STOP_GRACE);
    if ended.remaining > 0 {
        return Err(RestartError::Stuck {
            gateway: name.to_owned(),
            pid: old.pid,
        });
    }
    let stopped = if ended.gracefully > 0 {
        Stopped::Gracefully
    } else if ended.killed > 0 {
        Stopped::Killed
    } else {
        Stopped::WasNotRunning
    };
    mark_log(&old.log, old.pid, stopped);

    let started = gateways::start(dir, weft, &state.config, &node, key_file, LogMode::Append)?;
    state.gateways[index] = started.record.clone();
    dir.save(state)?;
    let mut started = [started];
    gateways::wait_for_sockets(&mut started, SOCKET_WAIT)?;
    let [started] = started;
    Ok(Restarted {
        gateway: name.to_owned(),
        old_pid: old.pid,
        stopped,
        pid: started.record.pid,
        control_socket: started.record.control_socket,
        log: started.record.log,
    })
}

/// A line in the log between the old process's output and the new one's.
fn mark_log(log: &Path, pid: i32, stopped: Stopped) {
    let how = match stopped {
        Stopped::Gracefully => "stopped by SIGTERM",
        Stopped::Killed => "killed after SIGTERM was not enough",
        Stopped::WasNotRunning => "was not running",
    };
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Ok(mut f) = OpenOptions::new().append(true).open(log) {
        let _ = writeln!(
            f,
            "---- weft lab restart at unix time {at}: pid {pid} {how}; starting again ----"
        );
    }
}

/// One line saying what happened.
pub fn summary(r: &Restarted) -> String {
    let how = match r.stopped {
        Stopped::Gracefully => "stopped with SIGTERM",
        Stopped::Killed => "killed with SIGKILL after SIGTERM",
        Stopped::WasNotRunning => "was not running",
    };
    format!(
        "gateway {} restarted: pid {} {how}, new pid {} serves {} (log {})\n",
        r.gateway,
        r.old_pid,
        r.pid,
        r.control_socket.display(),
        r.log.display()
    )
}

#[cfg(test)]
mod tests {
    use weft_config::Loader;

    use super::*;
    use crate::lab::state::{FORMAT_VERSION, Phase};
    use crate::lab::topology::Topology;

    fn lab_without_gateways() -> LabState {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/lab.toml");
        let intent = Loader::new().env_prefix(None).file(&path).load().unwrap();
        LabState {
            version: FORMAT_VERSION,
            prefix: "wl0abc-".into(),
            phase: Phase::Up,
            created_unix: 1_700_000_000,
            config: vec![path],
            gateways_started: false,
            topology: Topology::build(&intent, "wl0abc-").unwrap(),
            gateways: Vec::new(),
        }
    }

    #[test]
    fn an_unknown_or_never_started_gateway_is_explained_and_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let mut state = lab_without_gateways();
        let weft = Path::new("/nonexistent/weft");
        let key = Path::new("/nonexistent/key");
        let e = restart(&sd, &mut state, weft, "nope-gw", key).unwrap_err();
        assert!(matches!(e, RestartError::UnknownGateway { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "lab wl0abc- has no gateway `nope-gw`; its gateways are: aws-gw, azure-gw, gcp-gw, \
             onprem-gw"
        );
        let e = restart(&sd, &mut state, weft, "aws-gw", key).unwrap_err();
        assert!(matches!(e, RestartError::NotStarted(_)), "{e}");
        assert!(e.to_string().contains("--no-gateways"), "{e}");
        assert!(sd.load().unwrap().is_none(), "no state file was written");
    }

    #[test]
    fn the_log_marks_the_restart_and_the_summary_names_both_processes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("aws-gw.log");
        std::fs::write(&log, "old output\n").unwrap();
        mark_log(&log, 42, Stopped::Gracefully);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("old output\n---- weft lab restart at unix time "));
        assert!(text.ends_with("pid 42 stopped by SIGTERM; starting again ----\n"));

        let r = Restarted {
            gateway: "aws-gw".into(),
            old_pid: 42,
            stopped: Stopped::Killed,
            pid: 43,
            control_socket: "/run/weft-lab/aws-gw.sock".into(),
            log: log.clone(),
        };
        let s = summary(&r);
        assert!(
            s.starts_with("gateway aws-gw restarted: pid 42 killed"),
            "{s}"
        );
        assert!(
            s.contains("new pid 43 serves /run/weft-lab/aws-gw.sock"),
            "{s}"
        );
    }
}
