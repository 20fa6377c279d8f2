//! `weft`: the command line of the weft overlay gateway.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// mimalloc rather than glibc's malloc: a gateway's start-up (netlink dumps of thousands of
/// links, routes and rules) peaks far above what it keeps, and glibc holds on to the freed
/// memory; mimalloc returns it to the system (see docs/performance.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand, ValueEnum};
use weft_config::{Diagnostics, Intent, LoadError, Loader, PrivateKey, PublicKey};
use weft_gateway::parity::parity;
use weft_gateway::plan::plan;
use weft_gateway::render::{config_layers, diagnostics_text, plan_text};

const DEFAULT_CONFIG: &str = "/etc/weft/weft.toml";

/// weft: a multicloud overlay gateway. One TOML file describes the whole overlay; every
/// gateway reads it.
#[derive(Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 invalid input or failed check, 2 usage error.\n\
Configuration layers: each -c FILE in order, then WEFT_SECTION__KEY environment variables,\n\
e.g. WEFT_OVERLAY__LISTEN_PORT=51821."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check configurations and report every mistake at once.
    #[command(after_help = "Examples:\n  weft validate config/examples/*.toml\n  \
        weft validate -c base.toml -c prod.toml --gateway aws-gw\n  \
        weft validate --format json site.toml")]
    Validate {
        /// Configurations to check, each on its own.
        files: Vec<PathBuf>,
        /// Layers of one configuration, merged in order.
        #[arg(
            short = 'c',
            long = "config",
            value_name = "FILE",
            conflicts_with = "files"
        )]
        config: Vec<PathBuf>,
        /// Also check what `weft run --gateway G` needs: its private key file (exists,
        /// mode 0600, matches the public key).
        #[arg(long, value_name = "G")]
        gateway: Option<String>,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what a gateway would set up: peers, networks, routes and cloud routes.
    #[command(
        after_help = "Examples:\n  weft plan -c config/examples/lab.toml --gateway aws-gw\n  \
        weft plan -c config/examples/multicloud.toml --json"
    )]
    Plan {
        /// Layers of the configuration, merged in order.
        #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: Vec<PathBuf>,
        /// The gateway to plan; every gateway when absent.
        #[arg(long, value_name = "G")]
        gateway: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Prove two networks identical at every site (CIDRs, attachments, prefixes, routes,
    /// cloud routes, MTU), or list each difference. Exits 1 when they differ.
    #[command(
        after_help = "Example:\n  weft parity shop/prod shop/staging -c config/examples/lab.toml"
    )]
    Parity {
        /// The first network, tenant/name.
        a: String,
        /// The second network, tenant/name.
        b: String,
        /// Layers of the configuration, merged in order.
        #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a WireGuard key pair: the private key goes to a new file of mode 0600, the
    /// public key to standard output.
    #[command(after_help = "Example:\n  weft keygen /etc/weft/wg.key > wg.pub")]
    Keygen {
        /// The private key file to create; an existing file is never overwritten.
        file: PathBuf,
    },
    /// Print the JSON Schema of the configuration file, for editors.
    #[command(after_help = "Example:\n  weft schema > weft.schema.json")]
    Schema,
    /// Run a gateway: WireGuard to the other gateways, a routing table per network, until
    /// SIGTERM. SIGHUP or an edit of the configuration files applies the difference.
    #[command(
        after_help = "Example:\n  weft run -c /etc/weft/weft.toml --gateway aws-gw --uapi-name weft0\n\n\
        Logs: WEFT_LOG=debug (tracing filter syntax). `wg show weft0` works while it runs."
    )]
    Run {
        /// Layers of the configuration, merged in order.
        #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: Vec<PathBuf>,
        /// The gateway of the configuration to be.
        #[arg(long, value_name = "G")]
        gateway: String,
        /// The control socket `weft status` talks to.
        #[arg(long, value_name = "PATH", default_value = weft_gateway::daemon::control::DEFAULT_CONTROL_SOCKET)]
        control: PathBuf,
        /// Serve the WireGuard UAPI socket under this name, for `wg show NAME`.
        #[arg(long, value_name = "NAME")]
        uapi_name: Option<String>,
        /// Do not re-read the configuration when its files change (SIGHUP still does).
        #[arg(long)]
        no_watch: bool,
        /// Threads that forward packets (see docs/performance.md for what each count gave).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
    },
    /// Show what a running gateway is doing: peers and handshakes, networks, routes, drops.
    #[command(
        after_help = "Examples:\n  weft status\n  weft status --control /run/weft-lab/aws-gw.sock --json"
    )]
    Status {
        /// The running gateway's control socket.
        #[arg(long, value_name = "PATH", default_value = weft_gateway::daemon::control::DEFAULT_CONTROL_SOCKET)]
        control: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The local multi-site lab: every site of a configuration as network namespaces on this
    /// host, with real gateways, real WireGuard and real traffic (needs root).
    #[command(
        after_help = "Examples:\n  sudo weft lab up -c config/examples/lab.toml\n  \
        sudo weft lab check\n  sudo weft lab down"
    )]
    Lab {
        #[command(subcommand)]
        command: weft_gateway::lab::LabCommand,
    },
    /// Measure weft's dataplane against plain veth forwarding (the ceiling), boringtun-cli
    /// and wireguard-go on the same two-site topology of network namespaces (needs root):
    /// TCP throughput, UDP packet rates, latency and CPU per GB, in interleaved rounds. With
    /// --memory, the resident size of one gateway with many networks and peers instead.
    #[command(
        after_help = "Examples:\n  sudo weft bench                 # 5 rounds of all four, a Markdown table\n  \
        sudo weft bench --quick --only veth,weft --rounds 1 --json\n  \
        sudo weft bench --memory        # one gateway, 1,000 networks, 100 peers: VmRSS vs 64 MiB\n\n\
        Needs iperf3, wireguard-tools and wireguard-go (scripts/install-deps); boringtun-cli is \
        installed with `cargo install --locked` into the cache directory on first use. --memory \
        needs none of them."
    )]
    Bench(weft_gateway::bench::BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The outcome of a command that ran: success, or a failed check whose report is printed.
enum Outcome {
    Ok,
    Failed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Validate {
            files,
            config,
            gateway,
            format,
        } => validate(files, config, gateway.as_deref(), format),
        Command::Plan {
            config,
            gateway,
            json,
        } => {
            let Some(intent) = load_or_report(&config)? else {
                return Ok(Outcome::Failed);
            };
            let names: Vec<String> = match gateway {
                Some(g) => vec![g],
                None => intent.gateways.keys().cloned().collect(),
            };
            let plans = names
                .iter()
                .map(|g| plan(&intent, g))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                let texts: Vec<String> = plans.iter().map(plan_text).collect();
                print!("{}", texts.join("\n"));
            }
            Ok(Outcome::Ok)
        }
        Command::Parity { a, b, config, json } => {
            let Some(intent) = load_or_report(&config)? else {
                return Ok(Outcome::Failed);
            };
            let report = parity(&intent, &a, &b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(if report.identical() {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        Command::Keygen { file } => {
            keygen(&file)?;
            Ok(Outcome::Ok)
        }
        Command::Run {
            config,
            gateway,
            control,
            uapi_name,
            no_watch,
            threads,
        } => {
            init_logging();
            weft_gateway::daemon::run(weft_gateway::daemon::RunOptions {
                config,
                gateway,
                control,
                uapi_name,
                watch: !no_watch,
                threads: usize::from(threads),
            })?;
            Ok(Outcome::Ok)
        }
        Command::Status { control, json } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let status = runtime.block_on(weft_gateway::daemon::control::ask(
                &control,
                weft_gateway::daemon::control::Request::Status,
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", weft_gateway::daemon::status_text::render(&status));
            }
            Ok(Outcome::Ok)
        }
        Command::Lab { command } => Ok(match weft_gateway::lab::run(command)? {
            true => Outcome::Ok,
            false => Outcome::Failed,
        }),
        Command::Bench(args) => Ok(match weft_gateway::bench::run(args)? {
            true => Outcome::Ok,
            false => Outcome::Failed,
        }),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&weft_config::json_schema())?
            );
            Ok(Outcome::Ok)
        }
    }
}

/// Logs go to standard error, filtered by `WEFT_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Loads a configuration; prints its diagnostics and returns `None` when it is invalid.
fn load_or_report(layers: &[PathBuf]) -> anyhow::Result<Option<Intent>> {
    let loader = layers.iter().fold(Loader::new(), |l, f| l.file(f));
    match loader.load() {
        Ok(intent) => Ok(Some(intent)),
        Err(LoadError::Invalid(diagnostics)) => {
            eprint!("{}", diagnostics_text(&diagnostics));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn validate(
    files: Vec<PathBuf>,
    layers: Vec<PathBuf>,
    gateway: Option<&str>,
    format: Format,
) -> anyhow::Result<Outcome> {
    let configs: Vec<Vec<PathBuf>> = if !layers.is_empty() {
        vec![layers]
    } else if files.is_empty() {
        vec![vec![PathBuf::from(DEFAULT_CONFIG)]]
    } else {
        files.into_iter().map(|f| vec![f]).collect()
    };
    let mut reports = Vec::new();
    let mut all_ok = true;
    for config in configs {
        let name = config_layers(&config);
        let loader = config.iter().fold(Loader::new(), |l, f| l.file(f));
        let result = loader.load().map_err(|e| match e {
            LoadError::Invalid(d) => d,
            unreadable => {
                let mut d = Diagnostics::default();
                d.push(weft_config::Diagnostic {
                    location: weft_config::Location::Unknown,
                    key: weft_config::KeyPath::root(),
                    message: unreadable.to_string(),
                    expected: "a readable configuration file".into(),
                    hint: "check the path and its permissions".into(),
                });
                d
            }
        });
        let result = result.and_then(|intent| match gateway {
            Some(g) => intent.load_private_key(g).map(|_| intent).map_err(|d| {
                let mut all = Diagnostics::default();
                all.push(*d);
                all
            }),
            None => Ok(intent),
        });
        all_ok &= result.is_ok();
        reports.push((name, result));
    }
    match format {
        Format::Text => {
            for (name, result) in &reports {
                match result {
                    Ok(intent) => println!(
                        "{name}: ok ({} tenants, {} networks, {} sites, {} gateways)",
                        intent.tenants.len(),
                        intent.networks.len(),
                        intent.sites.len(),
                        intent.gateways.len()
                    ),
                    Err(diagnostics) => {
                        eprint!("{}", diagnostics_text(diagnostics));
                        println!("{name}: invalid ({} errors)", diagnostics.len());
                    }
                }
            }
        }
        Format::Json => {
            let json: Vec<_> = reports
                .iter()
                .map(|(name, result)| match result {
                    Ok(_) => serde_json::json!({"config": name, "valid": true, "errors": []}),
                    Err(d) => serde_json::json!({"config": name, "valid": false, "errors": d}),
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(if all_ok { Outcome::Ok } else { Outcome::Failed })
}

fn keygen(file: &PathBuf) -> anyhow::Result<()> {
    let key = PrivateKey::generate().context("reading the system's random source")?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                file.display()
            )
        })?;
    out.write_all(key.to_base64().as_bytes())?;
    out.write_all(b"\n")?;
    out.sync_all()?;
    println!("{}", PublicKey::from_private(&key));
    Ok(())
}
