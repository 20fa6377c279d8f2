//! From a gateway's plan to its dataplane's configuration: the one place that knows both.

use std::net::SocketAddr;

use weft_config::{Endpoint, EndpointHost, PrivateKey};
use weft_dataplane::{DataplaneConfig, GatewayPeerConfig, NetworkConfig, RemoteRoute};

use crate::plan::GatewayPlan;

/// Seconds between keepalives to other gateways: keeps NAT and stateful firewall mappings
/// of the underlay open, and lets a restarted gateway be noticed quickly.
pub const GATEWAY_KEEPALIVE_SECS: u16 = 25;

/// The dataplane configuration for `plan`. `resolve` turns an endpoint into an address; an
/// endpoint it cannot resolve (yet) leaves the peer waiting for that peer to call in.
pub fn dataplane_config(
    plan: &GatewayPlan,
    private_key: &PrivateKey,
    resolve: &dyn Fn(&Endpoint) -> Option<SocketAddr>,
) -> DataplaneConfig {
    let key_of = |gateway: &str| {
        plan.peers
            .iter()
            .find(|p| p.gateway == gateway)
            .map(|p| *p.public_key.as_bytes())
    };
    DataplaneConfig {
        private_key: *private_key.as_bytes(),
        infra_address: plan.infra_address,
        networks: plan
            .networks
            .iter()
            .map(|n| NetworkConfig {
                name: n.network.to_string(),
                label: n.label.value(),
                mtu: n.mtu,
                local_prefixes: n.local_routes.clone(),
                remote_routes: n
                    .remote_routes
                    .iter()
                    .filter_map(|r| {
                        Some(RemoteRoute {
                            prefix: r.prefix,
                            peer: key_of(&r.gateway)?,
                        })
                    })
                    .collect(),
            })
            .collect(),
        gateway_peers: plan
            .peers
            .iter()
            .map(|p| GatewayPeerConfig {
                public_key: *p.public_key.as_bytes(),
                endpoint: resolve(&p.endpoint),
                infra_address: p.infra_address,
                persistent_keepalive: Some(GATEWAY_KEEPALIVE_SECS),
            })
            .collect(),
        workload_peers: Vec::new(),
    }
}

/// Resolves an endpoint without the network when it is a literal address.
pub fn literal_endpoint(endpoint: &Endpoint) -> Option<SocketAddr> {
    match endpoint.host {
        EndpointHost::Ip(ip) => Some(SocketAddr::new(ip, endpoint.port)),
        EndpointHost::Name(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_gateway_translates_every_route_to_a_peer_key() {
        let (intent, plan) = crate::plan::lab_plan("aws-gw");
        let key = PrivateKey::from_bytes([7; 32]);
        let config = dataplane_config(&plan, &key, &literal_endpoint);
        assert_eq!(config.networks.len(), 3);
        assert_eq!(config.gateway_peers.len(), 3);
        let shop = config
            .networks
            .iter()
            .find(|n| n.name == "shop/prod")
            .unwrap();
        assert_eq!(shop.label, 1001);
        assert_eq!(
            shop.remote_routes.len(),
            6,
            "every remote prefix has its peer"
        );
        let azure = intent.gateways["azure-gw"].public_key;
        assert!(
            shop.remote_routes
                .iter()
                .filter(|r| r.peer == *azure.as_bytes())
                .all(|r| r.prefix.to_string().contains(":2::")
                    || r.prefix.to_string().starts_with("10.10.2."))
        );
        assert_eq!(
            config.gateway_peers[0].endpoint,
            Some("192.0.2.2:51820".parse().unwrap())
        );
    }
}
