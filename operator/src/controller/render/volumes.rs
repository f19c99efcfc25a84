//! The agent pod's volumes and the agent container's mounts: the host's
//! CNI and Multus directories, `/run/multus`, the settings ConfigMap, the
//! projected service-account token and the readiness indicator's
//! directory; and the container paths they use.

use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeFile,
    HostPathVolumeSource, KeyToPath, ObjectFieldSelector, ProjectedVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use multus_config::crd::MultusConfigSpec;

use crate::agent::args as agent_args;

/// Where the host's CNI conf dir is mounted in the agent container.
pub const CONTAINER_CONF_DIR: &str = agent_args::DEFAULT_CNI_CONF_DIR;
/// Where the host's CNI bin dir is mounted in the agent container.
pub const CONTAINER_BIN_DIR: &str = agent_args::DEFAULT_CNI_BIN_DIR;
/// Where the host's Multus conf dir (`spec.multusConfDir`) is mounted,
/// read-only, in the agent container: the agent reports the CNI networks of
/// its configs, which NADs without `spec.config` refer to.
pub const CONTAINER_MULTUS_CONF_DIR: &str = agent_args::DEFAULT_MULTUS_CONF_DIR;
/// Where the agent settings ConfigMap is mounted.
pub const CONFIG_MOUNT_DIR: &str = "/etc/multus";

/// Where the projected service-account token is mounted.
pub const TOKEN_MOUNT_DIR: &str = agent_args::DEFAULT_SERVICE_ACCOUNT_DIR;
/// Host directory for the plugin's runtime files, mounted at the same path.
pub const RUN_MULTUS_DIR: &str = "/run/multus";

/// Lifetime of the projected token; the agent refreshes the host copy.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Container paths the agent pod uses for its own mounts; host paths from
/// the spec mounted at the same path must stay clear of them.
pub const RESERVED_CONTAINER_PATHS: [&str; 4] = [
    "/host",
    CONFIG_MOUNT_DIR,
    "/var/run/secrets",
    "/run/secrets",
];

/// Whether `path` is `dir` or below it (by path components).
pub fn is_within(path: &str, dir: &str) -> bool {
    let normal = |p: &str| -> Vec<String> {
        Path::new(p)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (path, dir) = (normal(path), normal(dir));
    path.len() >= dir.len() && path[..dir.len()] == dir[..]
}

/// The host directory to mount (at the same path) so the agent sees the
/// readiness indicator file: `None` when there is no indicator or when it
/// is already visible through the conf dir, cache dir or /run/multus
/// mount.
pub fn indicator_mount_dir(spec: &MultusConfigSpec) -> Option<String> {
    let file = spec.readiness_indicator_file.as_deref()?;
    if is_within(file, spec.cni_conf_dir()) {
        return None;
    }
    let parent = Path::new(file).parent()?.to_string_lossy().into_owned();
    if is_within(&parent, spec.cache_dir()) || is_within(&parent, RUN_MULTUS_DIR) {
        return None;
    }
    Some(parent)
}

/// The directory of the delegate API's socket, when it is enabled and not
/// under `/run/multus` (mounted anyway), mounted at the same path.
pub fn delegate_socket_mount_dir(spec: &MultusConfigSpec) -> Option<String> {
    let socket = spec.delegate_socket()?;
    let parent = std::path::Path::new(socket).parent()?.to_str()?.to_owned();
    (!is_within(&parent, RUN_MULTUS_DIR) && parent != "/").then_some(parent)
}

/// The host directory `path` as volume `name` (created when missing).
fn host_path_volume(name: &str, path: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_owned(),
            type_: Some("DirectoryOrCreate".to_owned()),
        }),
        ..Volume::default()
    }
}

/// Mounts volume `name` at `path` in the agent container.
fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The agent's projected service-account token, with the cluster CA and
/// the namespace beside it (what an in-cluster client reads).
fn token_volume() -> Volume {
    Volume {
        name: "service-account-token".to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".to_owned(),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".to_owned(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".to_owned(),
                            path: "ca.crt".to_owned(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".to_owned(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".to_owned()),
                                field_path: "metadata.namespace".to_owned(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
            default_mode: None,
        }),
        ..Volume::default()
    }
}

/// The agent pod's volumes and the agent container's mounts: the host's
/// CNI conf, bin, Multus conf and cache dirs, `/run/multus`, the settings
/// ConfigMap `config_map`, the projected token and, where needed, the
/// readiness indicator's directory ([`indicator_mount_dir`]).
pub(super) fn agent_volumes(
    spec: &MultusConfigSpec,
    config_map: String,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        host_path_volume("cni-conf-dir", spec.cni_conf_dir()),
        host_path_volume("cni-bin-dir", spec.cni_bin_dir()),
        host_path_volume("multus-conf-dir", spec.multus_conf_dir()),
        host_path_volume("cache-dir", spec.cache_dir()),
        host_path_volume("run-multus", RUN_MULTUS_DIR),
        Volume {
            name: "agent-config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map,
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        token_volume(),
    ];
    let mut mounts = vec![
        mount("cni-conf-dir", CONTAINER_CONF_DIR, false),
        mount("cni-bin-dir", CONTAINER_BIN_DIR, false),
        mount("multus-conf-dir", CONTAINER_MULTUS_CONF_DIR, true),
        mount("cache-dir", spec.cache_dir(), false),
        mount("run-multus", RUN_MULTUS_DIR, false),
        mount("agent-config", CONFIG_MOUNT_DIR, true),
        mount("service-account-token", TOKEN_MOUNT_DIR, true),
    ];
    if let Some(dir) = indicator_mount_dir(spec) {
        volumes.push(host_path_volume("readiness-indicator", &dir));
        mounts.push(mount("readiness-indicator", &dir, true));
    }
    if let Some(dir) = delegate_socket_mount_dir(spec) {
        volumes.push(host_path_volume("delegate-socket", &dir));
        mounts.push(mount("delegate-socket", &dir, false));
    }
    (volumes, mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::render::fixtures::{config, pod_spec, settings};
    use crate::controller::render::render;

    #[test]
    fn readiness_indicator_dir_is_mounted_only_when_not_already_visible() {
        let with = |file: &str| MultusConfigSpec {
            readiness_indicator_file: Some(file.into()),
            ..MultusConfigSpec::default()
        };
        assert_eq!(indicator_mount_dir(&MultusConfigSpec::default()), None);
        assert_eq!(indicator_mount_dir(&with("/etc/cni/net.d/10-x.conf")), None);
        assert_eq!(indicator_mount_dir(&with("/run/multus/ready")), None);
        assert_eq!(indicator_mount_dir(&with("/var/lib/cni/multus/x")), None);
        assert_eq!(
            indicator_mount_dir(&with("/run/calico/ready")).as_deref(),
            Some("/run/calico")
        );
        let children = render(&config(with("/run/calico/ready")), &settings(), &[]).unwrap();
        let mounts = pod_spec(&children).containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        let m = mounts
            .iter()
            .find(|m| m.name == "readiness-indicator")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/run/calico", Some(true))
        );
        assert!(is_within("/a/b/c", "/a/b"));
        assert!(is_within("/a/b", "/a/b/"));
        assert!(!is_within("/a/bc", "/a/b"));
    }

    #[test]
    fn the_delegate_api_gets_its_flag_the_hosts_pids_and_its_socket_dir() {
        use multus_config::crd::multus_config::DelegateApiSpec;
        let render_with = |api: Option<DelegateApiSpec>| {
            let children = render(
                &config(MultusConfigSpec {
                    delegate_api: api,
                    cni_bin_dir: Some("/home/kubernetes/bin".into()),
                    ..MultusConfigSpec::default()
                }),
                &settings(),
                &[],
            )
            .unwrap();
            pod_spec(&children).clone()
        };
        let off = render_with(Some(DelegateApiSpec::default()));
        assert_eq!(off.host_pid, None);
        let args = off.containers[0].args.clone().unwrap();
        assert!(
            !args.iter().any(|a| a.contains("delegate-socket")),
            "{args:?}"
        );

        let on = render_with(Some(DelegateApiSpec {
            enabled: Some(true),
            socket_path: None,
        }));
        assert_eq!(on.host_pid, Some(true));
        let args = on.containers[0].args.clone().unwrap();
        assert!(
            args.contains(&"--delegate-socket=/run/multus/multus.sock".to_owned()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--host-cni-bin-dir=/home/kubernetes/bin".to_owned()),
            "{args:?}"
        );
        let named = |p: &k8s_openapi::api::core::v1::PodSpec, n: &str| {
            p.volumes.as_ref().unwrap().iter().any(|v| v.name == n)
        };
        assert!(
            !named(&on, "delegate-socket"),
            "under /run/multus: mounted already"
        );

        let elsewhere = render_with(Some(DelegateApiSpec {
            enabled: Some(true),
            socket_path: Some("/var/run/multus-cni/multus.sock".into()),
        }));
        assert!(named(&elsewhere, "delegate-socket"));
        let m = elsewhere.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "delegate-socket")
            .unwrap();
        assert_eq!(m.mount_path, "/var/run/multus-cni");
    }

    #[test]
    fn network_hotplug_gets_its_cri_socket_the_hosts_pids_and_cni_path() {
        use multus_config::crd::multus_config::NetworkHotplugSpec;
        let render_with = |hotplug: Option<NetworkHotplugSpec>| {
            let children = render(
                &config(MultusConfigSpec {
                    network_hotplug: hotplug,
                    cni_bin_dir: Some("/home/kubernetes/bin".into()),
                    ..MultusConfigSpec::default()
                }),
                &settings(),
                &[],
            )
            .unwrap();
            pod_spec(&children).clone()
        };
        for off in [None, Some(NetworkHotplugSpec::default())] {
            let off = render_with(off);
            assert_eq!(off.host_pid, None);
            let args = off.containers[0].args.clone().unwrap();
            assert!(!args.iter().any(|a| a.contains("hotplug")), "{args:?}");
        }
        let on = render_with(Some(NetworkHotplugSpec {
            enabled: Some(true),
            cri_socket: None,
        }));
        assert_eq!(on.host_pid, Some(true));
        let args = on.containers[0].args.clone().unwrap();
        assert!(
            args.contains(
                &"--network-hotplug-cri-socket=/run/containerd/containerd.sock".to_owned()
            ),
            "{args:?}"
        );
        assert!(
            args.contains(&"--host-cni-bin-dir=/home/kubernetes/bin".to_owned()),
            "{args:?}"
        );
        let crio = render_with(Some(NetworkHotplugSpec {
            enabled: Some(true),
            cri_socket: Some("/var/run/crio/crio.sock".into()),
        }));
        let args = crio.containers[0].args.clone().unwrap();
        assert!(
            args.contains(&"--network-hotplug-cri-socket=/var/run/crio/crio.sock".to_owned()),
            "{args:?}"
        );
    }

    #[test]
    fn the_multus_conf_dir_is_mounted_read_only_for_the_agent_to_report() {
        let children = render(
            &config(MultusConfigSpec {
                multus_conf_dir: Some("/etc/k/multus".into()),
                ..MultusConfigSpec::default()
            }),
            &settings(),
            &[],
        )
        .unwrap();
        let pod = pod_spec(&children);
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "multus-conf-dir")
            .unwrap();
        assert_eq!(volume.host_path.as_ref().unwrap().path, "/etc/k/multus");
        let c = &pod.containers[0];
        let m = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "multus-conf-dir")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/host/etc/cni/multus/net.d", Some(true))
        );
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--multus-conf-dir=/host/etc/cni/multus/net.d".to_owned())
        );
    }
}
