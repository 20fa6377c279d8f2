//! The two-site topology every candidate runs on, identical for all of them:
//!
//! ```text
//!  client ──eth0──lan0── gateway A ──ul0────ul0── gateway B ──lan0──eth0── server
//!  10.10.1.10     10.10.1.1      192.0.2.1   192.0.2.2      10.10.2.1     10.10.2.10
//! ```
//!
//! Four namespaces named `wfb<pid>-<candidate>-<role>`, veth links of MTU 1500. What joins
//! the gateways (plain routes, weft, or a WireGuard interface) is the candidate's business.
//! A [`Bed`] removes everything it made when dropped, also on an error, a panic or after
//! Ctrl-C; [`sweep_stale`] removes what a killed run left.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use weft_dataplane::linux::netns;

use super::check_interrupt;
use super::report::Candidate;
use crate::lab::netns::{identity, list, processes_in, set_sysctl};
use crate::lab::process;

/// Every bench namespace starts with this, then the pid of the `weft bench` that made it.
pub const NAME_HEAD: &str = "wfb";
/// Where userspace WireGuard implementations put their UAPI sockets (host-wide).
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// The client workload's address.
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 10);
/// Gateway A's address towards the client (the client's default gateway).
pub const CLIENT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);
/// The client's site prefix.
pub const CLIENT_PREFIX: &str = "10.10.1.0/24";
/// The server workload's address.
pub const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 10);
/// Gateway B's address towards the server.
pub const SERVER_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);
/// The server's site prefix.
pub const SERVER_PREFIX: &str = "10.10.2.0/24";
/// Gateway A's underlay address.
pub const UNDERLAY_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Gateway B's underlay address.
pub const UNDERLAY_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Prefix length of the underlay and site subnets.
pub const SUBNET_LEN: u8 = 24;
/// The WireGuard port of every gateway.
pub const LISTEN_PORT: u16 = 51820;
/// MTU of every veth link: client, underlay and server side.
pub const LINK_MTU: u16 = 1500;
/// A gateway's interface towards its workload.
pub const LAN_INTERFACE: &str = "lan0";
/// A gateway's underlay interface.
pub const UNDERLAY_INTERFACE: &str = "ul0";
/// A workload's interface.
pub const WORKLOAD_INTERFACE: &str = "eth0";
/// How long stopped processes get after SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);

/// One side of the topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client's site.
    A,
    /// The server's site.
    B,
}

impl Side {
    /// Both sides.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// `a` or `b`.
    pub fn letter(self) -> char {
        match self {
            Side::A => 'a',
            Side::B => 'b',
        }
    }

    /// The gateway's underlay address.
    pub fn underlay(self) -> Ipv4Addr {
        match self {
            Side::A => UNDERLAY_A,
            Side::B => UNDERLAY_B,
        }
    }

    /// The gateway's address towards its workload.
    pub fn lan_address(self) -> Ipv4Addr {
        match self {
            Side::A => CLIENT_GATEWAY,
            Side::B => SERVER_GATEWAY,
        }
    }

    /// The site prefix behind this gateway.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::A => CLIENT_PREFIX,
            Side::B => SERVER_PREFIX,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The namespace names of one candidate's topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// `wfb<pid>-<tag>-`, shared by all four.
    pub prefix: String,
    /// The client workload.
    pub client: String,
    /// Gateway A (client side).
    pub gateway_a: String,
    /// Gateway B (server side).
    pub gateway_b: String,
    /// The server workload.
    pub server: String,
}

impl Names {
    /// The names for `candidate` in the run of process `pid`.
    pub fn new(pid: u32, candidate: Candidate) -> Self {
        let prefix = format!("{NAME_HEAD}{pid}-{}-", candidate.tag());
        Names {
            client: format!("{prefix}client"),
            gateway_a: format!("{prefix}gw-a"),
            gateway_b: format!("{prefix}gw-b"),
            server: format!("{prefix}server"),
            prefix,
        }
    }

    /// The gateway namespace of `side`.
    pub fn gateway(&self, side: Side) -> &str {
        match side {
            Side::A => &self.gateway_a,
            Side::B => &self.gateway_b,
        }
    }

    /// All four, client first.
    pub fn all(&self) -> [&str; 4] {
        [&self.client, &self.gateway_a, &self.gateway_b, &self.server]
    }
}

/// The name of a WireGuard tunnel interface of `candidate` at `side`: unique on the host
/// (the UAPI sockets of userspace implementations are host-wide) and within Linux's 15
/// bytes for any pid (at most 7 digits): `wfb<pid><b|g><a|b>`.
pub fn tunnel_interface(pid: u32, candidate: Candidate, side: Side) -> String {
    let kind = match candidate {
        Candidate::Boringtun => 'b',
        Candidate::WireguardGo => 'g',
        Candidate::Veth => 'v',
        Candidate::Weft => 'w',
    };
    format!("{NAME_HEAD}{pid}{kind}{}", side.letter())
}

/// The pid of the run that made a bench namespace or interface, from its name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_HEAD)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// A process the benchmark started in a namespace, with its output in a log file.
#[derive(Debug)]
pub struct Process {
    /// What it is, for messages.
    pub name: String,
    /// The child (`ip netns exec` replaces itself with the program: same pid).
    pub child: Child,
    /// Its standard output and error.
    pub log: PathBuf,
}

impl Process {
    /// Starts `program args...` in namespace `ns` (`ip netns exec`), output to `log`, in a
    /// process group of its own (a Ctrl-C reaches the benchmark, which stops it in order).
    /// `WEFT_*` variables other than `WEFT_LOG` are not passed on: they would override a
    /// gateway's configuration.
    pub fn spawn(
        name: &str,
        ns: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Process> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("WEFT_") && k != "WEFT_LOG")
            {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} in {ns}", program.display()))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// An error saying it ended, with the end of its log.
    pub fn died(&mut self) -> anyhow::Error {
        let status = self
            .exited()
            .map_or_else(|| "running".to_owned(), |s| s.to_string());
        anyhow::anyhow!(
            "{} exited ({status}); its log {} ends:\n{}",
            self.name,
            self.log.display(),
            crate::lab::gateways::tail(&self.log, 12)
        )
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaps it. True when it ended by itself
    /// or on SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.exited().is_some() {
            return true;
        }
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

/// One candidate's topology while it exists: its namespaces and the processes started in
/// them. Dropping it stops the processes and deletes the namespaces.
#[derive(Debug)]
pub struct Bed {
    /// The namespace names.
    pub names: Names,
    /// Namespaces created so far (all four once built).
    created: Vec<String>,
    /// The candidate's gateway processes, whose CPU time is measured.
    pub gateways: Vec<Process>,
    /// Helpers (the iperf3 server).
    pub helpers: Vec<Process>,
    /// UAPI sockets to remove at the end (a process killed hard leaves its socket).
    pub uapi_sockets: Vec<PathBuf>,
}

impl Bed {
    /// Builds the namespaces and links of `names`. With `lan_addresses`, the gateways get
    /// their workload-side addresses (10.10.1.1, 10.10.2.1); weft adds those itself, as
    /// its configuration says.
    pub fn build(names: Names, lan_addresses: bool) -> anyhow::Result<Bed> {
        let mut bed = Bed {
            names,
            created: Vec::new(),
            gateways: Vec::new(),
            helpers: Vec::new(),
            uapi_sockets: Vec::new(),
        };
        bed.plumb(lan_addresses)?;
        Ok(bed)
    }

    fn plumb(&mut self, lan_addresses: bool) -> anyhow::Result<()> {
        let n = self.names.clone();
        for ns in n.all() {
            check_interrupt()?;
            netns::create(ns)?;
            self.created.push(ns.to_owned());
        }
        // Before the links exist, so that they inherit `default`: gateways forward, and
        // do not filter by reverse path (weft's traffic leaves by a TUN it did not enter).
        for side in Side::BOTH {
            let gw = n.gateway(side);
            set_sysctl(gw, &["ipv4", "ip_forward"], "1")?;
            for scope in ["all", "default"] {
                set_sysctl(gw, &["ipv4", "conf", scope, "rp_filter"], "0")?;
            }
        }
        let mtu = LINK_MTU.to_string();
        veth(
            &n.client,
            WORKLOAD_INTERFACE,
            &n.gateway_a,
            LAN_INTERFACE,
            &mtu,
        )?;
        veth(
            &n.gateway_a,
            UNDERLAY_INTERFACE,
            &n.gateway_b,
            UNDERLAY_INTERFACE,
            &mtu,
        )?;
        veth(
            &n.server,
            WORKLOAD_INTERFACE,
            &n.gateway_b,
            LAN_INTERFACE,
            &mtu,
        )?;
        for side in Side::BOTH {
            let gw = n.gateway(side);
            let underlay = format!("{}/{SUBNET_LEN}", side.underlay());
            netns::ip(
                gw,
                &["address", "add", &underlay, "dev", UNDERLAY_INTERFACE],
            )?;
            if lan_addresses {
                let lan = format!("{}/{SUBNET_LEN}", side.lan_address());
                netns::ip(gw, &["address", "add", &lan, "dev", LAN_INTERFACE])?;
            }
            for dev in [UNDERLAY_INTERFACE, LAN_INTERFACE] {
                netns::ip(gw, &["link", "set", dev, "up"])?;
            }
        }
        for (ns, address, gateway) in [
            (&n.client, CLIENT_ADDRESS, CLIENT_GATEWAY),
            (&n.server, SERVER_ADDRESS, SERVER_GATEWAY),
        ] {
            let a = format!("{address}/{SUBNET_LEN}");
            netns::ip(ns, &["address", "add", &a, "dev", WORKLOAD_INTERFACE])?;
            netns::ip(ns, &["link", "set", WORKLOAD_INTERFACE, "up"])?;
            netns::ip(
                ns,
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    &gateway.to_string(),
                    "dev",
                    WORKLOAD_INTERFACE,
                ],
            )?;
        }
        Ok(())
    }

    /// The pids of the gateway processes.
    pub fn gateway_pids(&self) -> Vec<i32> {
        self.gateways.iter().map(Process::pid).collect()
    }

    /// An error when a gateway or helper has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in self.gateways.iter_mut().chain(self.helpers.iter_mut()) {
            if p.exited().is_some() {
                return Err(p.died());
            }
        }
        Ok(())
    }

    /// Stops every process, deletes the namespaces and the UAPI sockets; warnings on
    /// standard error for what could not be undone. Safe to call twice.
    pub fn teardown(&mut self) {
        for p in self.helpers.iter_mut().chain(self.gateways.iter_mut()) {
            if !p.stop(GRACE) {
                eprintln!("warning: {} needed SIGKILL", p.name);
            }
        }
        self.helpers.clear();
        self.gateways.clear();
        remove_namespaces(&mut self.created);
        for socket in self.uapi_sockets.drain(..) {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Ends every process still living in the namespaces `created` (SIGTERM, then SIGKILL after
/// [`GRACE`]) and deletes them, emptying the list; a warning on standard error for each
/// namespace that could not be deleted. What every bench topology does last.
pub fn remove_namespaces(created: &mut Vec<String>) {
    end_processes_in(created);
    for ns in created.drain(..) {
        if let Err(e) = netns::delete(&ns) {
            eprintln!("warning: could not delete network namespace {ns}: {e}");
        }
    }
}

/// Ends every process living in the namespaces `names`: SIGTERM, then SIGKILL after
/// [`GRACE`].
fn end_processes_in(names: &[String]) {
    let identities: Vec<(u64, u64)> = names.iter().filter_map(|n| identity(n)).collect();
    let strays: Vec<(i32, Option<u64>)> = processes_in(&identities)
        .into_iter()
        .map(|pid| (pid, process::stat(pid).map(|s| s.start_time)))
        .collect();
    if !strays.is_empty() {
        process::terminate(&strays, GRACE);
    }
}

/// A veth pair: `a_name` in namespace `a`, its peer `b_name` in namespace `b`.
pub fn veth(a: &str, a_name: &str, b: &str, b_name: &str, mtu: &str) -> anyhow::Result<()> {
    netns::ip(
        a,
        &[
            "link", "add", a_name, "mtu", mtu, "type", "veth", "peer", "name", b_name, "mtu", mtu,
            "netns", b,
        ],
    )?;
    Ok(())
}

/// Removes the namespaces (and the processes in them) and UAPI sockets of bench runs whose
/// process is gone, e.g. killed with SIGKILL. Returns how many namespaces it deleted.
pub fn sweep_stale() -> usize {
    let dead = |name: &str| {
        owner_pid(name).is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        })
    };
    let stale: Vec<String> = list().into_iter().filter(|n| dead(n)).collect();
    end_processes_in(&stale);
    let deleted = stale
        .iter()
        .filter(|n| matches!(netns::delete(n), Ok(true)))
        .count();
    if let Ok(dir) = std::fs::read_dir(UAPI_DIR) {
        for entry in dir.flatten() {
            if entry.file_name().to_str().is_some_and(dead) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    deleted
}

/// Polls `ready` every 20 ms until it says yes, at most `limit`; an error names `what`.
/// Stops early on Ctrl-C.
pub fn wait_until(
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupt()?;
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{what} did not happen within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use weft_dataplane::linux::is_valid_interface_name;

    use super::*;

    #[test]
    fn names_carry_the_pid_and_the_candidate() {
        let n = Names::new(4242, Candidate::WireguardGo);
        assert_eq!(n.prefix, "wfb4242-wgo-");
        assert_eq!(
            n.all(),
            [
                "wfb4242-wgo-client",
                "wfb4242-wgo-gw-a",
                "wfb4242-wgo-gw-b",
                "wfb4242-wgo-server"
            ]
        );
        assert_eq!(n.gateway(Side::B), "wfb4242-wgo-gw-b");
        for name in n.all() {
            assert_eq!(owner_pid(name), Some(4242));
        }
        assert_eq!(owner_pid("wfb-x"), None);
        assert_eq!(owner_pid("wl3f9a-gw-aws"), None);
    }

    #[test]
    fn tunnel_interfaces_are_unique_and_fit_linux() {
        // The largest pid Linux hands out has 7 digits.
        let mut seen = std::collections::BTreeSet::new();
        for c in Candidate::ALL {
            for side in Side::BOTH {
                let name = tunnel_interface(4_194_304, c, side);
                assert!(is_valid_interface_name(&name), "{name}");
                assert_eq!(owner_pid(&name), Some(4_194_304));
                assert!(seen.insert(name));
            }
        }
        assert_eq!(
            tunnel_interface(17, Candidate::Boringtun, Side::A),
            "wfb17ba"
        );
    }

    #[test]
    fn sides_mirror_each_other() {
        assert_eq!(Side::A.other(), Side::B);
        assert_eq!(Side::B.prefix(), SERVER_PREFIX);
        assert_eq!(Side::A.lan_address(), CLIENT_GATEWAY);
        assert_eq!(Side::B.underlay(), UNDERLAY_B);
    }
}
