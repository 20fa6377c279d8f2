//! Load + validate + plan of a large generated overlay: 10 tenants, 1,000 networks, 4 sites
//! (one of each kind), every network attached at every site with route tables to write.
//! Goal: under 1 s in release on the project's 2-core machine.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weft_config::Loader;
use weft_gateway::plan::plan;

const TENANTS: usize = 10;
const NETWORKS_PER_TENANT: usize = 100;
const KEYS: [&str; 4] = [
    "6JYxBVz/fIw9vLsYVjYvhXiP/h7JFRJSAGaOznd8RwQ=",
    "5s4MdU5HVJZ40L9p2od3EJZDNUBo/8fIWsgV8ml4OVc=",
    "SFXDju7JWCeHt1pQHvSmxkxTaOtzWQn5sVrlUZrKxiw=",
    "75F6+dcxDsgGCT5vL1prD4VoVvvGRKdGuMfP7Zd08Hs=",
];

fn overlay() -> String {
    let mut s = String::from(
        "[overlay]\nname = \"big\"\ndomain = \"big.internal\"\ninfra_prefix = \"100.64.0.0/24\"\n\n\
         [sites.aws]\nkind = \"aws\"\nregion = \"eu-west-1\"\n\
         [sites.azure]\nkind = \"azure\"\nsubscription = \"6f1c2b7e-3d4a-4b8e-9c0f-1a2b3c4d5e6f\"\nresource_group = \"net\"\n\
         [sites.gcp]\nkind = \"gcp\"\nproject = \"big-net-prod\"\n\
         [sites.dc]\nkind = \"linux\"\n\n",
    );
    for (i, site) in ["aws", "azure", "gcp", "dc"].iter().enumerate() {
        let _ = writeln!(
            s,
            "[gateways.{site}-gw]\nsite = \"{site}\"\nendpoint = \"203.0.113.{}:51820\"\npublic_key = \"{}\"\n\
             private_key_file = \"/etc/weft/wg.key\"\ninfra_address = \"100.64.0.{}\"\n",
            i + 1,
            KEYS[i],
            i + 1
        );
    }
    for t in 0..TENANTS {
        let _ = writeln!(s, "[tenants.t{t}]");
        for n in 0..NETWORKS_PER_TENANT {
            let id = format!("t{t}/n{n}");
            let _ = writeln!(
                s,
                "[networks.\"{id}\"]\ncidrs = [\"10.{n}.0.0/16\", \"fd{t:02x}:{n:x}::/48\"]\nlabel = {}",
                16 + t * 1000 + n
            );
            let tables = [
                (
                    "aws",
                    format!("rtb-{:017x}", t * 1000 + n),
                    format!("eni-{:017x}", t * 1000 + n),
                ),
                ("azure", format!("rt-t{t}-n{n}"), format!("10.{n}.1.4")),
                ("gcp", format!("vpc-t{t}-n{n}"), format!("10.{n}.2.4")),
                ("dc", format!("{}", 1000 + n), format!("10.{n}.3.1")),
            ];
            for (i, (site, table, hop)) in tables.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "[attachments.\"{id}\".{site}]\nprefixes = [\"10.{n}.{i}.0/24\", \"fd{t:02x}:{n:x}:0:{i}::/64\"]\n\
                     interface = \"t{t}n{n}\"\nroute_tables = [\"{table}\"]\nnext_hop = \"{hop}\"",
                );
                if *site != "aws" {
                    let _ = writeln!(s, "next_hop_ipv6 = \"fd{t:02x}:{n:x}:0:{i}::4\"");
                }
            }
        }
    }
    s
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.toml");
    std::fs::write(&path, overlay()).expect("write overlay");
    let run = || {
        let intent = Loader::new()
            .env_prefix(None)
            .file(&path)
            .load()
            .expect("generated overlay is valid");
        let plans: Vec<_> = intent
            .gateways
            .keys()
            .map(|g| plan(&intent, g).expect("plan"))
            .collect();
        assert_eq!(intent.networks.len(), TENANTS * NETWORKS_PER_TENANT);
        assert_eq!(plans[0].networks.len(), TENANTS * NETWORKS_PER_TENANT);
        plans
    };
    let mut group = c.benchmark_group("config");
    group.sample_size(10);
    group.bench_function("load_validate_plan_1000_networks_4_sites", |b| {
        b.iter(|| black_box(run()))
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
