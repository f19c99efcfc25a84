//! Every parser survives malformed input without panicking: a deterministic
//! mutation fuzzer (seeded corpus of real inputs, random byte flips,
//! insertions, deletions, truncations and splices). Not a substitute for
//! coverage-guided fuzzing, but it runs in every test pass.

use multus_config::ConfFile;
use multus_config::cni::CniVersion;
use multus_config::cni::args::CniArgs;
use multus_config::cni::netconf::NetworkConfig;
use multus_config::cni::result::CniResult;
use multus_config::generate::{GeneratorOptions, generate};
use multus_config::multus_conf::MultusNetConf;
use multus_config::npwg::{
    parse_default_network_annotation, parse_network_status_annotation, parse_networks_annotation,
    resolve_nad_config,
};

const ITERATIONS: usize = 3_000;

/// xorshift64*: small, deterministic, good enough for mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"/",
    b"@",
    b"\\u0000",
    b"null",
    b"-1",
    b"1e999",
    b"\"cniVersion\"",
    b"\"plugins\"",
    b"\"type\"",
    b"0.0.0.0/0",
    b"::/0",
    b"\xff\xfe",
    b"=",
    b";",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, corpus: &[&[u8]]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, piece.iter().copied());
            }
            2 if !data.is_empty() => {
                let end = (at + rng.below(8)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 => data.truncate(at),
            4 => {
                let other = corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                data.splice(at..at, other[from..].iter().copied());
            }
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

fn fuzz(name: &str, seed: u64, corpus: &[&[u8]], mut target: impl FnMut(&[u8])) {
    let mut rng = Rng(seed);
    for _ in 0..ITERATIONS {
        let input = mutate(&mut rng, corpus);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        assert!(
            result.is_ok(),
            "{name} panicked on input {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

const CALICO: &[u8] = include_bytes!("../../tests/fixtures/net.d-calico/10-calico.conflist");
const EXPECTED: &[u8] = include_bytes!("../../tests/fixtures/net.d-calico/expected-00-multus.conf");
const STATUS: &[u8] = include_bytes!("../../tests/fixtures/pods/expected-network-status.json");
const MACVLAN: &[u8] = br#"{"cniVersion":"0.3.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"192.168.1.0/24"}}"#;

#[test]
fn networks_annotation_parser_never_panics() {
    let corpus: &[&[u8]] = &[
        b"macvlan-conf,ns/other@net9, third",
        br#"[{"name":"a","namespace":"b","interface":"x","ips":["10.1.1.1/24"],"mac":"02:00:00:00:00:01","default-route":["10.1.1.254"],"cni-args":{"k":"v"},"infiniband-guid":"00:11:22:33:44:55:66:77","portMappings":[{"hostPort":1}],"bandwidth":{"ingressRate":1},"deviceID":"0000:00:01.0","ipam-claim-reference":"c"}]"#,
        br#"[{"name":"a","interfaceRequest":"net1","ips":["fd00::1/64"]}]"#,
    ];
    fuzz("parse_networks_annotation", 1, corpus, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = parse_networks_annotation(&text, "default");
        let _ = parse_default_network_annotation(&text, "kube-system");
    });
}

#[test]
fn cni_config_parsers_never_panic() {
    let corpus: &[&[u8]] = &[CALICO, EXPECTED, MACVLAN];
    fuzz("NetworkConfig/MultusNetConf", 2, corpus, |input| {
        if let Ok(mut config) = NetworkConfig::parse(input) {
            let _ = config.capabilities();
            let _ = config.cni_version();
            config.set_name_if_missing("n");
            config.set_cni_version_if_missing(CniVersion::V1_0_0);
            let _ = config.to_bytes();
            let _ = config.into_conflist();
        }
        let _ = MultusNetConf::parse(input);
        let text = String::from_utf8_lossy(input);
        let _ = resolve_nad_config("ns", "nad", Some(&text), &[], CniVersion::V0_3_1);
        let _ = generate(
            &[ConfFile::new("10-x.conflist", input.to_vec())],
            &GeneratorOptions::default(),
        );
    });
}

#[test]
fn result_parser_and_conversions_never_panic() {
    let corpus: &[&[u8]] = &[
        br#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/n","mtu":1500}],"ips":[{"interface":0,"address":"10.1.1.2/24","gateway":"10.1.1.1"},{"interface":0,"address":"fd00::2/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.1.1","priority":5}],"dns":{"nameservers":["10.0.0.10"]}}"#,
        br#"{"cniVersion":"0.3.1","interfaces":[{"name":"net1"}],"ips":[{"version":"4","interface":0,"address":"192.168.1.205/24"}]}"#,
        br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.1.5/24","gateway":"10.1.1.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{}}"#,
    ];
    fuzz("CniResult", 3, corpus, |input| {
        if let Ok(result) = CniResult::parse(input, None) {
            for target in multus_config::cni::ALL_VERSIONS {
                if let Ok(converted) = result.convert_to(target) {
                    let _ = converted.to_json_bytes();
                }
            }
        }
    });
}

#[test]
fn status_annotation_and_cni_args_parsers_never_panic() {
    let corpus: &[&[u8]] = &[STATUS, b"IgnoreUnknown=1;K8S_POD_NAME=a;X==b"];
    fuzz("network-status/CNI_ARGS", 4, corpus, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = parse_network_status_annotation(&text);
        if let Ok(args) = CniArgs::parse(&text) {
            let _ = args.to_string();
        }
    });
}
