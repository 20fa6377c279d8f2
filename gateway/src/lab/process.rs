//! Processes the lab started or finds in its namespaces: whether they still live and how to
//! end them (SIGTERM, a bounded wait, then SIGKILL). A pid is only signalled while its
//! start time is the recorded one, so a pid reused by an unrelated process is left alone.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What `/proc/PID/stat` says about a process that matters here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z` for a zombie, ...).
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the state; field 22 the start time: 19 further fields on.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// The state of process `pid`, if it exists.
pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` is running (not a zombie) and, when a start time is given, is still the
/// process that was recorded.
pub fn is_alive(pid: i32, start_time: Option<u64>) -> bool {
    match stat(pid) {
        Some(s) => s.state != 'Z' && start_time.is_none_or(|t| t == s.start_time),
        None => false,
    }
}

/// What [`terminate`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Terminated {
    /// Processes that ended after SIGTERM.
    pub gracefully: usize,
    /// Processes that needed SIGKILL.
    pub killed: usize,
    /// Processes still there after SIGKILL and a further second (stuck in the kernel).
    pub remaining: usize,
}

/// Ends each process (pid and optional start time): SIGTERM, up to `grace` for all of them
/// to exit, then SIGKILL to the rest.
pub fn terminate(processes: &[(i32, Option<u64>)], grace: Duration) -> Terminated {
    let alive = |list: &[(i32, Option<u64>)]| -> Vec<(i32, Option<u64>)> {
        list.iter()
            .copied()
            .filter(|(p, t)| is_alive(*p, *t))
            .collect()
    };
    let targets = alive(processes);
    for (pid, _) in &targets {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let wait = |list: &[(i32, Option<u64>)], limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let left = alive(list);
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let stubborn = wait(&targets, grace);
    for (pid, _) in &stubborn {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let remaining = wait(&stubborn, Duration::from_secs(1));
    Terminated {
        gracefully: targets.len() - stubborn.len(),
        killed: stubborn.len() - remaining.len(),
        remaining: remaining.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_past_odd_command_names() {
        let text = "4242 (weft (lab) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                start_time: 987_654
            })
        );
        assert_eq!(parse_stat("4242 (x) Z"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_the_recorded_one() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(is_alive(me, None));
        assert!(is_alive(me, Some(s.start_time)));
        assert!(!is_alive(me, Some(s.start_time + 1)));
    }

    #[test]
    fn terminate_ends_a_child_and_skips_the_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = stat(pid).unwrap().start_time;
        // A waiting thread reaps the child, as init would reap an orphaned gateway.
        let reaper = std::thread::spawn(move || child.wait());
        let t = terminate(&[(pid, Some(start))], Duration::from_secs(5));
        assert_eq!(t.gracefully + t.killed, 1);
        assert_eq!(t.remaining, 0);
        reaper.join().unwrap().unwrap();
        assert_eq!(
            terminate(&[(pid, Some(start))], Duration::from_secs(1)),
            Terminated::default()
        );
    }
}
