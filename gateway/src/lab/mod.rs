//! `weft lab`: every site of a configuration built on one host in network namespaces, with
//! a real `weft run` per gateway, real WireGuard between them and real traffic to prove it.
//!
//! One site is an underlay port, a gateway namespace, a "VPC router" namespace per network
//! attached there and a workload namespace per prefix of each attachment:
//!
//! ```text
//!  workload ──eth0──p<i>── VPC router ──gw──<interface>── gateway ──ul0── underlay bridge
//!  (10.10.1.10)   (10.10.1.1)     (169.254.100.2)  (weft adds .1)  (192.0.2.x)
//! ```
//!
//! A running lab follows an edited configuration with [`reload`] (new attachments get their
//! routers and workloads, then every gateway is asked to reload), and [`restart`] stops and
//! starts one gateway as `up` did.
//!
//! The pure parts ([`topology`], [`naming`], [`addressing`], the state file format, the
//! verdicts of [`check`] and the diff of [`reload`]) are unit tested; the rest shells out to
//! `ip` or enters namespaces on dedicated threads and is tested as root by
//! `tests/lab_topology.rs` and, with running gateways and traffic, `tests/lab_e2e.rs`.

pub mod addressing;
pub mod check;
pub mod down;
pub mod exec;
pub mod gateways;
pub mod naming;
pub mod netns;
pub mod plumbing;
pub mod probe;
pub mod process;
pub mod reload;
pub mod restart;
pub mod state;
pub mod status;
pub mod topology;
pub mod up;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use weft_config::{Intent, LoadError, Loader};

use self::state::{DEFAULT_STATE_DIR, StateDir};
use crate::render::{config_layers, diagnostics_text};

/// The configuration `weft lab up` builds when given none.
pub const DEFAULT_CONFIG: &str = "config/examples/lab.toml";

/// The `weft lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build every site of a configuration as network namespaces on this host and start a
    /// `weft run` per gateway in them.
    #[command(after_help = "Examples:\n  sudo weft lab up\n  \
        sudo weft lab up -c config/examples/lab.toml --no-gateways\n  \
        sudo weft lab up -c base.toml -c lab-overrides.toml --state-dir /run/weft-lab2\n\n\
        One lab at a time per state directory; `weft lab down` removes it.")]
    Up {
        /// Layers of the configuration, merged in order.
        #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: Vec<PathBuf>,
        /// Build the namespaces, links and routes only and start no gateway: to look at the
        /// topology, or to run a gateway by hand.
        #[arg(long)]
        no_gateways: bool,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Prove the reachability matrix (ICMP echo and a TCP transfer checked by SHA-256
    /// between workloads of each network at different sites) and the isolation of networks
    /// (tagged UDP probes, counted where they arrive). Exits 1 on any failure.
    #[command(after_help = "Examples:\n  sudo weft lab check\n  \
        sudo weft lab check --json | jq '.isolation'")]
    Check {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Show the lab: every namespace, workload and VPC router with its addresses, and
    /// whether each gateway process is alive. Exits 1 when no lab is up.
    #[command(after_help = "Examples:\n  sudo weft lab status\n  \
        sudo weft lab status --json | jq -r '.workloads[].name'")]
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Run a command inside a workload's namespace; its exit code is passed through.
    #[command(
        after_help = "Examples:\n  sudo weft lab exec shop.prod.aws-lab.v4 -- ip -br address\n  \
        sudo weft lab exec shop.prod.aws-lab.v4 -- ping -c 3 10.10.2.10\n\n\
        `weft lab status` lists the workloads."
    )]
    Exec {
        /// The workload, e.g. `shop.prod.aws-lab.v4` (its namespace name works too).
        workload: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Apply the edited configuration to the running lab: build the VPC routers, workloads
    /// and routes of attachments that appeared (and remove those that went away), then ask
    /// every gateway to reload through its control socket and report each answer. Exits 1
    /// when a gateway did not apply it.
    #[command(after_help = "Examples:\n  \
        sudo weft lab reload   # after adding e.g. [networks.\"shop/dev\"] and its attachments\n  \
        sudo weft lab reload --json | jq '.gateways[] | {gateway, dataplane: .answer.dataplane}'\n\n\
        The configuration files are those the lab was built from (`weft lab status` names them). \
        Reload follows networks and attachments; a change of gateways needs `weft lab down` and \
        `weft lab up`.")]
    Reload {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Stop one gateway's `weft run` (SIGTERM, SIGKILL after 5 s) and start it again as `up`
    /// did: same namespace, arguments and environment, output appended to its log. Waits
    /// until it serves its control socket.
    #[command(after_help = "Examples:\n  sudo weft lab restart aws-gw\n  \
        sudo weft lab restart gcp-gw --state-dir /run/weft-lab2 && \\\n    \
        weft status --control /run/weft-lab2/gcp-gw.sock")]
    Restart {
        /// The gateway, e.g. `aws-gw` (`weft lab status` lists them).
        gateway: String,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Stop the gateways and remove every namespace and the state of the lab. Safe to run
    /// again, and after a crash.
    #[command(after_help = "Examples:\n  sudo weft lab down\n  \
        sudo weft lab down --prefix wl3f9a-   # a lab whose state file is lost")]
    Down {
        /// Also remove every namespace starting with this lab prefix (from `ip netns
        /// list`), for a lab whose state file is lost.
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// The lab's state directory.
        #[command(flatten)]
        state: StateDirArg,
    },
}

/// The state directory option shared by every `weft lab` subcommand.
#[derive(Debug, Clone, Args)]
pub struct StateDirArg {
    /// Where the lab's state file, key copies, control sockets and gateway logs live; one lab
    /// at a time per directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR, env = "WEFT_LAB_STATE_DIR")]
    pub state_dir: PathBuf,
}

impl StateDirArg {
    fn dir(&self) -> StateDir {
        StateDir::new(&self.state_dir)
    }
}

/// Refuses politely when not root: everything the lab does needs it.
fn require_root(what: &str) -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        anyhow::bail!(
            "`weft lab {what}` must run as root: the lab creates network namespaces, links and \
             raw sockets; run it with sudo, e.g. `sudo weft lab {what}`"
        )
    }
}

/// Runs a `weft lab` subcommand; `Ok(false)` is a failed check (exit 1).
pub fn run(command: LabCommand) -> anyhow::Result<bool> {
    match command {
        LabCommand::Up {
            config,
            no_gateways,
            state,
        } => {
            require_root("up")?;
            let dir = state.dir();
            if let Some(lab) = dir.load()? {
                return Err(state::StateError::AlreadyUp {
                    dir: dir.path().to_owned(),
                    prefix: lab.prefix,
                    dir_flag: dir.flag(),
                }
                .into());
            }
            let Some(intent) = load(&config)? else {
                return Ok(false);
            };
            let options = up::UpOptions {
                config,
                state_dir: dir.clone(),
                no_gateways,
            };
            let lab = up::up(&intent, &options)?;
            print!("{}", up::summary(&lab, dir.path(), &dir.flag()));
            Ok(true)
        }
        LabCommand::Check { json, state } => {
            require_root("check")?;
            let dir = state.dir();
            let lab = loaded(&dir)?;
            let report = check::run(&lab, &check::Settings::default())?;
            print_report(json, &report, check::render)?;
            Ok(report.ok)
        }
        LabCommand::Status { json, state } => {
            let dir = state.dir();
            let Some(lab) = dir.load()? else {
                if json {
                    println!("{}", serde_json::json!({ "up": false }));
                } else {
                    println!(
                        "no lab is up in {} (start one with `sudo weft lab up{}`)",
                        dir.path().display(),
                        dir.flag()
                    );
                }
                return Ok(false);
            };
            let status = status::Status::of(&lab, dir.path().to_owned());
            print_report(json, &status, status::render)?;
            Ok(status.healthy())
        }
        LabCommand::Exec {
            workload,
            command,
            state,
        } => {
            require_root("exec")?;
            let lab = loaded(&state.dir())?;
            let status = exec::exec(&lab.topology, &workload, &command)?;
            match exec::exit_code(status) {
                0 => Ok(true),
                1 => Ok(false),
                code => {
                    let _ = std::io::stdout().flush();
                    std::process::exit(code)
                }
            }
        }
        LabCommand::Reload { json, state } => {
            require_root("reload")?;
            let dir = state.dir();
            let mut lab = loaded(&dir)?;
            let Some(intent) = load(&lab.config)? else {
                return Ok(false);
            };
            let new = topology::Topology::build(&intent, &lab.prefix)?;
            eprintln!("reloading lab {}", lab.prefix);
            let report = reload::reload(&dir, &mut lab, new, |step| eprintln!("  {step}"))?;
            print_report(json, &report, reload::render)?;
            Ok(report.ok)
        }
        LabCommand::Restart { gateway, state } => {
            require_root("restart")?;
            let dir = state.dir();
            let mut lab = loaded(&dir)?;
            let Some(intent) = load(&lab.config)? else {
                return Ok(false);
            };
            // The key is copied again from where the configuration says, as `up` does.
            let key = match intent.gateways.get(&gateway) {
                Some(g) => g.private_key_file.clone(),
                None if lab.topology.gateway(&gateway).is_some() => anyhow::bail!(
                    "gateway `{gateway}` is no longer in the configuration ({}); `weft lab \
                     down{1}` and `weft lab up{1}` rebuild the lab without it",
                    config_layers(&lab.config),
                    dir.flag()
                ),
                // Unknown to the lab as well: `restart` says which gateways there are.
                None => PathBuf::new(),
            };
            let weft = std::env::current_exe().context("finding the weft binary")?;
            let restarted = restart::restart(&dir, &mut lab, &weft, &gateway, &key)?;
            print!("{}", restart::summary(&restarted));
            Ok(true)
        }
        LabCommand::Down { prefix, state } => {
            require_root("down")?;
            let dir = state.dir();
            let report = down::down(&dir, prefix.as_deref())?;
            match report.prefix {
                None => println!("no lab is up in {}", dir.path().display()),
                Some(p) => println!(
                    "lab {p} is down: {} gateways stopped ({} needed SIGKILL), {} other \
                     processes ended, {} namespaces deleted",
                    report.gateways.gracefully + report.gateways.killed,
                    report.gateways.killed,
                    report.others.gracefully + report.others.killed,
                    report.deleted.len()
                ),
            }
            Ok(true)
        }
    }
}

/// Prints `report` as pretty JSON with `--json`, else as the text `render` makes of it.
fn print_report<T: serde::Serialize>(
    json: bool,
    report: &T,
    render: fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

/// The lab recorded in `dir`, or an error telling how to make one.
fn loaded(dir: &StateDir) -> anyhow::Result<state::LabState> {
    dir.load()?.with_context(|| {
        format!(
            "no lab is up in {}; start one with `sudo weft lab up{}`",
            dir.path().display(),
            dir.flag()
        )
    })
}

/// Loads a configuration; prints its diagnostics and returns `None` when it is invalid.
fn load(layers: &[PathBuf]) -> anyhow::Result<Option<Intent>> {
    let loader = layers.iter().fold(Loader::new(), |l, f| l.file(f));
    match loader.load() {
        Ok(intent) => Ok(Some(intent)),
        Err(LoadError::Invalid(diagnostics)) => {
            eprint!("{}", diagnostics_text(&diagnostics));
            Ok(None)
        }
        Err(LoadError::Unreadable { path, source }) => {
            let hint = if path == std::path::Path::new(DEFAULT_CONFIG) {
                " (the default configuration is relative to the repository's root: run from \
                 there or pass -c FILE)"
            } else {
                ""
            };
            anyhow::bail!("cannot read {}: {source}{hint}", path.display())
        }
    }
}
