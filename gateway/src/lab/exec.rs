//! `weft lab exec`: a command inside a workload's namespace, as if run on that workload.

use std::process::{Command, ExitStatus};

use super::topology::Topology;

/// Why the command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// There is no such workload.
    #[error("no workload `{name}` in lab {prefix}; its workloads are:\n  {known}")]
    UnknownWorkload {
        /// The name asked for.
        name: String,
        /// The lab.
        prefix: String,
        /// Its workloads.
        known: String,
    },
    /// `ip netns exec` could not be started.
    #[error("running `ip netns exec`: {0}")]
    Spawn(std::io::Error),
}

/// Runs `command` in workload `name`'s namespace (`ip netns exec`), its standard streams
/// those of this process, and returns how it ended.
pub fn exec(topology: &Topology, name: &str, command: &[String]) -> Result<ExitStatus, ExecError> {
    let workload = topology
        .workload(name)
        .ok_or_else(|| ExecError::UnknownWorkload {
            name: name.to_owned(),
            prefix: topology.prefix.clone(),
            known: topology
                .workloads
                .iter()
                .map(|w| format!("{} ({})", w.name, w.address))
                .collect::<Vec<_>>()
                .join("\n  "),
        })?;
    Command::new("ip")
        .args(["netns", "exec", &workload.namespace])
        .args(command)
        .env("WEFT_LAB_WORKLOAD", &workload.name)
        .status()
        .map_err(ExecError::Spawn)
}

/// The exit code a shell would report for `status`: its code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn exit_codes_pass_through_like_a_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
