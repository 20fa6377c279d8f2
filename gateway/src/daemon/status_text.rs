//! `weft status` for humans: the gateway's peers, networks, routes and drops as tables.

use serde_json::Value;

use crate::render::table;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn handshake(v: &Value) -> String {
    match v.get("secs").and_then(Value::as_u64) {
        Some(s) => format!("{s} s ago"),
        None => "never".to_owned(),
    }
}

/// Renders the JSON status a gateway's control socket gives.
pub fn render(status: &Value) -> String {
    let mut out = format!(
        "gateway {} at site {}, listening on UDP {}, config {}\n",
        text(&status["gateway"]),
        text(&status["site"]),
        text(&status["listen_port"]),
        text(&status["config"]),
    );
    if let Some(reload) = status.get("last_reload").filter(|r| !r.is_null()) {
        out += &format!("last reload: {}\n", text(&reload["outcome"]));
    }
    let dp = &status["dataplane"];
    let mut peers = table(&[
        "peer",
        "public key",
        "endpoint",
        "last handshake",
        "sent",
        "received",
    ]);
    for p in dp["peers"].as_array().into_iter().flatten() {
        peers.add_row(vec![
            text(&p["name"]),
            text(&p["public_key"]),
            text(&p["endpoint"]),
            handshake(&p["since_last_handshake"]),
            format!("{} B", text(&p["wireguard_tx_bytes"])),
            format!("{} B", text(&p["wireguard_rx_bytes"])),
        ]);
    }
    out += &format!("\nPeers\n{peers}\n");
    let mut networks = table(&[
        "network",
        "label",
        "mtu",
        "packets in",
        "packets out",
        "dropped",
    ]);
    for n in dp["networks"].as_array().into_iter().flatten() {
        let dropped: u64 = n["drops"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.as_u64())
            .sum();
        networks.add_row(vec![
            text(&n["name"]),
            text(&n["label"]),
            text(&n["mtu"]),
            text(&n["received"]["packets"]),
            text(&n["sent"]["packets"]),
            dropped.to_string(),
        ]);
    }
    out += &format!("\nNetworks\n{networks}\n");
    for n in dp["networks"].as_array().into_iter().flatten() {
        let mut routes = table(&["prefix", "via"]);
        for r in n["routes"].as_array().into_iter().flatten() {
            let via = match r["via"]["kind"].as_str() {
                Some("local") => "local (TUN)".to_owned(),
                Some(kind) => format!("{kind} {}", text(&r["via"]["peer"])),
                None => "-".to_owned(),
            };
            routes.add_row(vec![text(&r["prefix"]), via]);
        }
        out += &format!("\nRoutes of {}\n{routes}\n", text(&n["name"]));
    }
    let mut drops = table(&["reason", "packets"]);
    for (reason, count) in dp["drops"].as_object().into_iter().flatten() {
        drops.add_row(vec![reason.clone(), text(count)]);
    }
    out += &format!("\nDrops by reason\n{drops}\n");
    out
}
