//! `weft run`: the gateway daemon. It loads the configuration, opens a TUN per network and
//! one UDP socket, makes the host's tables and rules match the plan, and drives the
//! dataplane core with packets and time. SIGHUP or a change of the configuration files
//! re-plans and applies only the difference; SIGTERM stops cleanly, removing what it made.

pub mod control;
mod forward;
pub mod host;
pub mod status_text;
pub mod uapi;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use ipnet::IpNet;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, warn};
use weft_config::{Endpoint, EndpointHost, LoadError, Loader, PrivateKey};
use weft_dataplane::core::Dataplane;
use weft_dataplane::linux::plumbing;
use weft_dataplane::linux::tun::{TUN_MTU, TunDevice, open_tun};
use weft_dataplane::linux::udp::UdpEndpoint;

use crate::plan::{GatewayPlan, plan};
use crate::render::config_layers;
use crate::translate::{dataplane_config, literal_endpoint};
use control::{Request, read_request};
use forward::{LanePool, Outbox};

/// Socket buffers: a full receive buffer is what holds userspace WireGuard back, so the
/// gateway asks for more than the sysctl default (root may, with the FORCE options).
const SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// How often the configuration files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What `weft run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Configuration layers.
    pub config: Vec<PathBuf>,
    /// The gateway to be.
    pub gateway: String,
    /// The control socket for `weft status`.
    pub control: PathBuf,
    /// The name `wg show` knows it by; none serves no UAPI socket.
    pub uapi_name: Option<String>,
    /// Whether to re-read the configuration when its files change.
    pub watch: bool,
    /// Threads of the runtime that forwards packets.
    pub threads: usize,
}

/// Runs the gateway until SIGTERM or SIGINT.
pub fn run(options: RunOptions) -> anyhow::Result<()> {
    // One thread: everything runs where the packets are read, with no hand-over between
    // threads (the multi-threaded scheduler's wake-ups cost latency on every packet).
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(options))
}

/// The configuration as this gateway uses it.
struct Loaded {
    plan: GatewayPlan,
    key: PrivateKey,
    /// Peer public key → gateway name, for status.
    names: HashMap<[u8; 32], String>,
    /// Peer public key → inner sources accepted from it, for `wg show`.
    allowed: HashMap<[u8; 32], Vec<IpNet>>,
}

fn load(options: &RunOptions) -> anyhow::Result<Loaded> {
    let loader = options.config.iter().fold(Loader::new(), |l, f| l.file(f));
    let intent = loader.load().map_err(|e| match e {
        LoadError::Invalid(d) => anyhow!(
            "the configuration is invalid:\n{}",
            d.iter().map(|d| d.render()).collect::<String>()
        ),
        other => anyhow!(other),
    })?;
    let key = intent
        .load_private_key(&options.gateway)
        .map_err(|d| anyhow!("cannot use the private key:\n{}", d.render()))?;
    let plan = plan(&intent, &options.gateway)?;
    let names = plan
        .peers
        .iter()
        .map(|p| (*p.public_key.as_bytes(), p.gateway.clone()))
        .collect();
    let allowed = plan
        .peers
        .iter()
        .map(|p| {
            (
                *p.public_key.as_bytes(),
                vec![IpNet::from(IpAddr::V4(p.infra_address))],
            )
        })
        .collect();
    Ok(Loaded {
        plan,
        key,
        names,
        allowed,
    })
}

/// Resolves every endpoint of the plan; names that do not resolve leave the peer to call in.
async fn resolve(plan: &GatewayPlan) -> HashMap<Endpoint, SocketAddr> {
    let mut resolved = HashMap::new();
    for peer in &plan.peers {
        let address = match &peer.endpoint.host {
            EndpointHost::Ip(_) => literal_endpoint(&peer.endpoint),
            EndpointHost::Name(name) => {
                match tokio::net::lookup_host((name.as_str(), peer.endpoint.port)).await {
                    Ok(mut addresses) => addresses.next(),
                    Err(e) => {
                        warn!(peer = %peer.gateway, endpoint = %peer.endpoint, error = %e, "endpoint does not resolve yet");
                        None
                    }
                }
            }
        };
        if let Some(address) = address {
            resolved.insert(peer.endpoint.clone(), address);
        }
    }
    resolved
}

struct Network {
    device: Arc<TunDevice>,
    reader: JoinHandle<()>,
}

/// What the tasks share.
struct Shared {
    options: RunOptions,
    dataplane: Mutex<Dataplane>,
    socket: UdpEndpoint,
    lanes: LanePool,
    networks: RwLock<HashMap<u32, Network>>,
    state: Mutex<State>,
    netlink: rtnetlink::Handle,
    reloading: tokio::sync::Mutex<()>,
}

struct State {
    loaded: Loaded,
    last_reload: Option<Value>,
    plumbing: Option<Value>,
}

/// Re-reads the configuration and applies the difference to TUNs, the dataplane and the
/// host. On a bad configuration nothing changes and the error is reported.
async fn reload(shared: &Arc<Shared>) -> anyhow::Result<Value> {
    // One at a time: the file watcher, SIGHUP and the control socket may all ask at once.
    let _serialized = shared.reloading.lock().await;
    let loaded = load(&shared.options)?;
    let resolved = resolve(&loaded.plan).await;
    let config = dataplane_config(&loaded.plan, &loaded.key, &|e| resolved.get(e).copied());
    // New networks need their TUN before routes can point at it.
    // In label order, so that what the kernel lists per device comes in the same order on
    // every start.
    let wanted: BTreeMap<u32, &str> = loaded
        .plan
        .networks
        .iter()
        .map(|n| (n.label.value(), n.tun.as_str()))
        .collect();
    let missing: Vec<(u32, String)> = {
        let networks = shared.networks.read().expect("lock");
        wanted
            .iter()
            .filter(|(label, _)| !networks.contains_key(label))
            .map(|(label, tun)| (*label, (*tun).to_owned()))
            .collect()
    };
    let mut opened = Vec::new();
    for (label, tun) in missing {
        match open_tun(&tun, TUN_MTU) {
            Ok(device) => {
                let device = Arc::new(device);
                let reader = tokio::spawn(
                    forward::tun_loop(shared.clone(), label, device.clone()).in_current_span(),
                );
                shared
                    .networks
                    .write()
                    .expect("lock")
                    .insert(label, Network { device, reader });
                opened.push(label);
            }
            Err(e) => {
                close_networks(shared, &opened).await;
                return Err(anyhow!(e).context(format!("opening TUN {tun}")));
            }
        }
    }
    // The host first: it checks every interface before it writes anything, so a plan whose
    // interfaces are missing changes nothing, and the dataplane keeps its configuration.
    let host = match plumbing::apply(&shared.netlink, &host::host_plumbing(&loaded.plan)).await {
        Ok(host) => host,
        Err(e) => {
            close_networks(shared, &opened).await;
            return Err(anyhow!(e).context("making the host's tables and rules match the plan"));
        }
    };
    // Forwarding goes on with the old tables while the new ones are built: the dataplane
    // is held only to sync peers and to swap the tables in.
    let mut outbox = Outbox::new();
    let synced = {
        let mut dataplane = shared.dataplane.lock().expect("lock");
        let synced = dataplane.sync_peers(&config);
        outbox.take_from(&mut dataplane);
        synced
    };
    outbox.flush(shared).await;
    // Off the forwarding threads: with one of them, building here would stop it.
    let tables = tokio::task::spawn_blocking(move || synced.build_tables(&config))
        .await
        .context("building the routing tables")?;
    let (report, retired) = shared
        .dataplane
        .lock()
        .expect("lock")
        .install_tables(tables, Instant::now());
    // Freed outside the lock, off the forwarding thread.
    tokio::task::spawn_blocking(move || drop(retired));
    // Networks that went away: their routes are gone, now their TUNs go.
    let gone: Vec<u32> = shared
        .networks
        .read()
        .expect("lock")
        .keys()
        .filter(|label| !wanted.contains_key(label))
        .copied()
        .collect();
    close_networks(shared, &gone).await;
    let summary = json!({
        "at_unix_secs": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
        "outcome": "applied",
        "dataplane": report,
        "host_changes": host.changes(),
    });
    info!(
        networks_added = report.networks_added,
        networks_removed = report.networks_removed,
        peers_added = report.peers_added,
        peers_removed = report.peers_removed,
        peers_kept = report.peers_kept,
        host_changes = host.changes(),
        "configuration applied"
    );
    let mut state = shared.state.lock().expect("lock");
    state.loaded = loaded;
    state.plumbing = Some(json!({ "changes": host.changes() }));
    state.last_reload = Some(summary.clone());
    Ok(summary)
}

/// Stops reading the TUNs of `labels` and closes them (a TUN goes with its descriptor).
/// The kernel takes tens of milliseconds to remove a device, so the descriptors are closed
/// on a blocking thread, not on the thread that forwards.
async fn close_networks(shared: &Shared, labels: &[u32]) {
    let closing: Vec<Network> = {
        let mut networks = shared.networks.write().expect("lock");
        labels.iter().filter_map(|l| networks.remove(l)).collect()
    };
    let mut devices = Vec::with_capacity(closing.len());
    for network in closing {
        network.reader.abort();
        // Once the reader is gone, its reference to the device is too.
        let _ = network.reader.await;
        devices.push(network.device);
    }
    if !devices.is_empty() {
        tokio::task::spawn_blocking(move || drop(devices));
    }
}

/// Reloads and records a failure without stopping the gateway.
async fn reload_reporting(shared: &Arc<Shared>) -> Value {
    match reload(shared).await {
        Ok(summary) => summary,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "reload failed; the running configuration stays");
            let failure = json!({ "outcome": format!("failed: {e:#}") });
            shared.state.lock().expect("lock").last_reload = Some(failure.clone());
            failure
        }
    }
}

fn status(shared: &Shared) -> Value {
    let dataplane = shared.dataplane.lock().expect("lock").status();
    let state = shared.state.lock().expect("lock");
    let mut dp = serde_json::to_value(&dataplane).unwrap_or(Value::Null);
    if let Some(peers) = dp.get_mut("peers").and_then(Value::as_array_mut) {
        for (peer, original) in peers.iter_mut().zip(&dataplane.peers) {
            peer["name"] = state
                .loaded
                .names
                .get(&original.public_key.0)
                .cloned()
                .map_or(Value::Null, Value::String);
        }
    }
    json!({
        "gateway": state.loaded.plan.gateway,
        "site": state.loaded.plan.site,
        "listen_port": state.loaded.plan.listen_port,
        "config": config_layers(&shared.options.config),
        "last_reload": state.last_reload,
        "host": state.plumbing,
        "dataplane": dp,
    })
}

fn uapi_text(shared: &Shared) -> String {
    let dataplane = shared.dataplane.lock().expect("lock").status();
    let state = shared.state.lock().expect("lock");
    let peers: Vec<uapi::UapiPeer> = dataplane
        .peers
        .iter()
        .map(|p| uapi::UapiPeer {
            public_key: p.public_key.0,
            endpoint: p.endpoint,
            since_last_handshake: p.since_last_handshake,
            tx_bytes: p.wireguard_tx_bytes,
            rx_bytes: p.wireguard_rx_bytes,
            persistent_keepalive: p.persistent_keepalive,
            allowed_ips: state
                .loaded
                .allowed
                .get(&p.public_key.0)
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    uapi::render_get(state.loaded.plan.listen_port, &peers, SystemTime::now())
}

/// Binds a Unix socket only its owner may use, replacing a stale one.
fn bind_private_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn control_loop(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(
            async move {
                let answer = match read_request(&mut stream).await {
                    Ok(Some(Request::Status)) => status(&shared),
                    Ok(Some(Request::Reload)) => reload_reporting(&shared).await,
                    _ => json!({ "error": "unknown request; send `status` or `reload`" }),
                };
                let _ = stream.write_all(answer.to_string().as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            .in_current_span(),
        );
    }
}

async fn uapi_loop(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let (reader, mut writer) = stream.split();
            let mut lines = tokio::io::BufReader::new(reader).lines();
            let first = lines.next_line().await.ok().flatten().unwrap_or_default();
            // A request ends with an empty line.
            while let Ok(Some(line)) = lines.next_line().await {
                if line.is_empty() {
                    break;
                }
            }
            let answer = if first == "get=1" {
                uapi_text(&shared)
            } else {
                uapi::render_refusal().to_owned()
            };
            let _ = writer.write_all(answer.as_bytes()).await;
        });
    }
}

/// The files' modification times and sizes, to notice an edit.
fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

async fn watch_loop(shared: Arc<Shared>) {
    let mut last = fingerprint(&shared.options.config);
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let now = fingerprint(&shared.options.config);
        if now != last {
            // Let an editor finish writing before reading.
            tokio::time::sleep(Duration::from_millis(200)).await;
            last = fingerprint(&shared.options.config);
            info!("configuration files changed; reloading");
            reload_reporting(&shared).await;
        }
    }
}

async fn serve(options: RunOptions) -> anyhow::Result<()> {
    let loaded = load(&options)?;
    // Every log line of this gateway, from every task, names it and its site.
    let span =
        tracing::info_span!("gateway", gateway = %loaded.plan.gateway, site = %loaded.plan.site);
    serve_loaded(options, loaded).instrument(span).await
}

async fn serve_loaded(options: RunOptions, loaded: Loaded) -> anyhow::Result<()> {
    let port = loaded.plan.listen_port;
    let (socket, undersized) = UdpEndpoint::bind(port, SOCKET_BUFFER_BYTES)
        .with_context(|| format!("binding UDP port {port}"))?;
    if let Some(e) = undersized {
        warn!(error = %e, "cannot enlarge the UDP socket buffers; throughput may suffer");
    }
    let netlink = plumbing::connect().context("opening rtnetlink")?;
    let resolved = resolve(&loaded.plan).await;
    let config = dataplane_config(&loaded.plan, &loaded.key, &|e| resolved.get(e).copied());
    let shared = Arc::new(Shared {
        dataplane: Mutex::new(Dataplane::new(&config, Instant::now())),
        socket,
        lanes: LanePool::default(),
        networks: RwLock::new(HashMap::new()),
        state: Mutex::new(State {
            loaded,
            last_reload: None,
            plumbing: None,
        }),
        netlink,
        options: options.clone(),
        reloading: tokio::sync::Mutex::new(()),
    });
    // The first "reload" opens the TUNs and makes the host match.
    reload(&shared).await?;
    let control = bind_private_socket(&options.control)?;
    let uapi_path = options
        .uapi_name
        .as_ref()
        .map(|name| Path::new(uapi::UAPI_DIR).join(format!("{name}.sock")));
    let uapi = uapi_path.as_deref().map(bind_private_socket).transpose()?;
    let mut tasks = vec![
        tokio::spawn(forward::udp_loop(shared.clone()).in_current_span()),
        tokio::spawn(forward::timer_loop(shared.clone()).in_current_span()),
        tokio::spawn(control_loop(shared.clone(), control).in_current_span()),
    ];
    if let Some(uapi) = uapi {
        tasks.push(tokio::spawn(
            uapi_loop(shared.clone(), uapi).in_current_span(),
        ));
    }
    if options.watch {
        tasks.push(tokio::spawn(watch_loop(shared.clone()).in_current_span()));
    }
    info!(
        listen_port = shared.state.lock().expect("lock").loaded.plan.listen_port,
        "gateway running"
    );

    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                info!("SIGHUP: reloading");
                reload_reporting(&shared).await;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    info!("stopping");
    for task in tasks {
        task.abort();
    }
    let networks: Vec<Network> = shared
        .networks
        .write()
        .expect("lock")
        .drain()
        .map(|(_, n)| n)
        .collect();
    for network in &networks {
        network.reader.abort();
    }
    let removed = plumbing::remove_all(&shared.netlink).await;
    if let Err(e) = &removed {
        warn!(error = %e, "could not remove every route and rule");
    }
    // All TUNs with one request, before their descriptors close: a device that goes with
    // its descriptor costs the kernel 20 ms or so on its own, 25 s for 1,000 networks.
    let tuns: Vec<String> = networks
        .iter()
        .filter_map(|n| n.device.name().ok())
        .collect();
    if let Err(e) = plumbing::remove_links(&shared.netlink, &tuns).await {
        warn!(error = %e, "could not delete the TUN devices together; they go one by one");
    }
    drop(networks);
    let _ = std::fs::remove_file(&options.control);
    if let Some(path) = uapi_path {
        let _ = std::fs::remove_file(path);
    }
    info!("stopped");
    Ok(())
}
