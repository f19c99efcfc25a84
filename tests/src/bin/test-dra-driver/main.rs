//! A minimal DRA (Dynamic Resource Allocation) driver for fake network
//! devices, for the device tests: the node part of a driver, for the real
//! kubelet of the node it runs on, plus what a driver's controller would
//! publish.
//!
//! At start it creates (or updates) a `resource.k8s.io/v1` DeviceClass
//! named after the driver (selector `device.driver == "<driver>"`) and one
//! ResourceSlice for the node (pool named after the node) listing the
//! `--devices`, each with the attributes Multus reads for a DRA device,
//! `k8s.cni.cncf.io/resourceName` (`--resource`) and
//! `k8s.cni.cncf.io/deviceID` (a made-up PCI address, `0000:00:1d.<n>` for
//! the n-th device), and the `--bare-devices` without any attribute. It
//! re-applies the slice every few seconds (the kubelet deletes a node's
//! slices when it restarts).
//!
//! It serves the kubelet's DRA plugin service, v1 and v1beta1, on
//! `<plugins-dir>/<driver>/dra.sock`, and the plugin registration service
//! on `<registry-dir>/<driver>-reg.sock`, where the kubelet finds it (the
//! latter without tonic, see `registration.rs`: the kubelet's registration
//! calls carry an `:authority` that tonic's HTTP/2 server refuses).
//! NodePrepareResources reads each claim from the API server and answers
//! with the devices of this driver in its allocation (no CDI devices);
//! NodeUnprepareResources succeeds. Both log what they did to stderr. On
//! SIGTERM/SIGINT it removes its sockets, the ResourceSlice and the
//! DeviceClass.
//!
//! ```text
//! test-dra-driver --driver e2e-dra.example.com --resource e2e.example.com/dranic \
//!     --devices dnic-0,dnic-1,dnic-2 --bare-devices dbare-0 --kubeconfig admin.kubeconfig
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch};
use kube::api::{PatchParams, ResourceExt as _};
use multus_e2e::cluster::{
    DRA_DEVICE_ID_ATTRIBUTE as DEVICE_ID_ATTRIBUTE,
    DRA_RESOURCE_NAME_ATTRIBUTE as RESOURCE_NAME_ATTRIBUTE,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

#[allow(clippy::all, missing_docs, missing_debug_implementations)]
mod api {
    pub mod pluginregistration {
        include!(concat!(env!("OUT_DIR"), "/pluginregistration.rs"));
    }
    pub mod dra {
        pub mod v1 {
            include!(concat!(
                env!("OUT_DIR"),
                "/k8s.io.kubelet.pkg.apis.dra.v1.rs"
            ));
        }
        pub mod v1beta1 {
            include!(concat!(
                env!("OUT_DIR"),
                "/k8s.io.kubelet.pkg.apis.dra.v1beta1.rs"
            ));
        }
    }
}

mod registration;

use api::dra::v1 as dra;
use api::pluginregistration as reg;
use registration::Registration;

/// The field manager of the objects this driver applies.
const FIELD_MANAGER: &str = "test-dra-driver";
/// Every API request is bounded by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the ResourceSlice is applied again.
const REPUBLISH: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(about = "A fake-network-device DRA driver (kubelet plugin) for tests")]
struct Args {
    /// The driver name (a DNS subdomain); also the DeviceClass's name.
    #[arg(long, default_value = "e2e-dra.example.com")]
    driver: String,
    /// The value of each device's `k8s.cni.cncf.io/resourceName` attribute.
    #[arg(long, default_value = "e2e.example.com/dranic")]
    resource: String,
    /// The devices with both Multus attributes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "dnic-0,dnic-1,dnic-2")]
    devices: Vec<String>,
    /// Devices without any attribute, comma separated.
    #[arg(long, value_delimiter = ',')]
    bare_devices: Vec<String>,
    /// The node's name; default: the host name.
    #[arg(long)]
    node: Option<String>,
    /// The pool's name; default: the node's name.
    #[arg(long)]
    pool: Option<String>,
    /// The kubeconfig to publish and read objects with; default: the
    /// `KUBECONFIG` variable, `~/.kube/config`, the in-cluster config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubelet's plugin registration directory.
    #[arg(long, default_value = "/var/lib/kubelet/plugins_registry")]
    registry_dir: PathBuf,
    /// The directory of the plugins' own sockets (`<driver>/dra.sock`).
    #[arg(long, default_value = "/var/lib/kubelet/plugins")]
    plugins_dir: PathBuf,
    /// The DRA plugin API versions to offer the kubelet, preferred first
    /// (`v1`, `v1beta1`); both are served either way.
    #[arg(long, value_delimiter = ',', default_value = "v1,v1beta1")]
    api_versions: Vec<String>,
}

/// The registration names of the DRA services for `versions`.
fn supported_services(versions: &[String]) -> anyhow::Result<Vec<String>> {
    versions
        .iter()
        .map(|version| match version.as_str() {
            "v1" | "v1beta1" => Ok(format!("{version}.DRAPlugin")),
            other => anyhow::bail!("unknown DRA plugin API version {other:?} (v1, v1beta1)"),
        })
        .collect()
}

/// What the ResourceSlice of the node lists.
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    driver: String,
    node: String,
    pool: String,
    resource: String,
    devices: Vec<String>,
    bare_devices: Vec<String>,
}

impl Slice {
    /// The slice's name: the driver's and the node's, as a DNS subdomain.
    fn name(&self) -> String {
        format!("{}-{}", self.driver.replace('.', "-"), self.node)
    }

    /// The `resource.k8s.io/v1` ResourceSlice object.
    fn object(&self) -> Value {
        let attributed = self.devices.iter().enumerate().map(|(index, name)| {
            json!({
                "name": name,
                "attributes": {
                    RESOURCE_NAME_ATTRIBUTE: {"string": self.resource},
                    DEVICE_ID_ATTRIBUTE: {"string": pci_address(index)},
                },
            })
        });
        let bare = self.bare_devices.iter().map(|name| json!({"name": name}));
        json!({
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {
                "name": self.name(),
                "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            },
            "spec": {
                "driver": self.driver,
                "nodeName": self.node,
                "pool": {"name": self.pool, "generation": 1, "resourceSliceCount": 1},
                "devices": attributed.chain(bare).collect::<Vec<_>>(),
            },
        })
    }
}

/// A made-up PCI address for the `index`-th device: `0000:00:1d.0` to
/// `0000:00:1d.7`, then `0000:00:1e.0` and so on.
fn pci_address(index: usize) -> String {
    format!("0000:00:{:02x}.{}", 0x1d + index / 8, index % 8)
}

/// The `resource.k8s.io/v1` DeviceClass of every device of `driver`.
fn device_class(driver: &str) -> Value {
    json!({
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {
            "name": driver,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
        },
        "spec": {
            "selectors": [{"cel": {"expression": format!("device.driver == {driver:?}")}}],
        },
    })
}

/// The devices allocated to a claim (a `resource.k8s.io/v1` ResourceClaim
/// as JSON) by `driver`, in allocation order; an error when the claim is
/// not allocated.
fn allocated_devices(claim: &Value, driver: &str) -> Result<Vec<dra::Device>, String> {
    let Some(results) = claim
        .pointer("/status/allocation/devices/results")
        .and_then(Value::as_array)
    else {
        return Err("the claim is not allocated".to_owned());
    };
    let text = |result: &Value, key: &str| result[key].as_str().unwrap_or_default().to_owned();
    Ok(results
        .iter()
        .filter(|result| result["driver"] == driver)
        .map(|result| dra::Device {
            request_names: vec![text(result, "request")],
            pool_name: text(result, "pool"),
            device_name: text(result, "device"),
            cdi_device_ids: Vec::new(),
        })
        .collect())
}

/// `request/pool/device` of each device, comma separated, for the log.
fn describe(devices: &[dra::Device]) -> String {
    let names: Vec<String> = devices
        .iter()
        .map(|d| {
            format!(
                "{}/{}/{}",
                d.request_names.join("+"),
                d.pool_name,
                d.device_name
            )
        })
        .collect();
    if names.is_empty() {
        "no device".to_owned()
    } else {
        names.join(", ")
    }
}

fn resource_api(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("resource.k8s.io", "v1", kind),
        plural,
    )
}

async fn bounded<T>(
    what: &str,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => anyhow::bail!("{what}: no answer within {REQUEST_TIMEOUT:?}"),
    }
}

/// Applies `object` (server-side apply, forced: this driver owns it).
async fn apply(api: &Api<DynamicObject>, object: &Value) -> anyhow::Result<()> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    bounded(
        &format!("applying {kind} {name}"),
        api.patch(name, &params, &Patch::Apply(object)),
    )
    .await
    .map(drop)
}

/// Deletes `name`, already gone included.
async fn delete(api: &Api<DynamicObject>, kind: &str, name: &str) -> anyhow::Result<()> {
    let request = async {
        match api.delete(name, &DeleteParams::default()).await {
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map(drop),
        }
    };
    bounded(&format!("deleting {kind} {name}"), request).await
}

/// The driver's DRA service state, shared by its gRPC handlers (both API
/// versions).
#[derive(Clone)]
struct Driver {
    name: String,
    client: Client,
    claims: ApiResource,
    /// What each prepared claim (by UID) got, for the unprepare log.
    prepared: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// The devices of this driver allocated to `claim`, after checking it
    /// is the claim the kubelet means (same UID).
    async fn prepare(&self, claim: &dra::Claim) -> Result<Vec<dra::Device>, String> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &claim.namespace, &self.claims);
        let object = bounded("reading the claim", api.get(&claim.name))
            .await
            .map_err(|e| format!("{e:#}"))?;
        if object.uid().as_deref() != Some(claim.uid.as_str()) {
            return Err(format!(
                "the claim has UID {:?}, not {}",
                object.uid(),
                claim.uid
            ));
        }
        allocated_devices(&object.data, &self.name)
    }

    /// NodePrepareResources of API `version`.
    async fn prepare_all(
        &self,
        version: &str,
        claims: Vec<dra::Claim>,
    ) -> dra::NodePrepareResourcesResponse {
        let mut response = dra::NodePrepareResourcesResponse::default();
        for claim in claims {
            let what = format!("{}/{} ({})", claim.namespace, claim.name, claim.uid);
            let answer = match self.prepare(&claim).await {
                Ok(devices) => {
                    let described = describe(&devices);
                    eprintln!(
                        "test-dra-driver: NodePrepareResources ({version}) {what}: {described}"
                    );
                    self.prepared
                        .lock()
                        .unwrap()
                        .insert(claim.uid.clone(), described);
                    dra::NodePrepareResourceResponse {
                        devices,
                        error: String::new(),
                    }
                }
                Err(error) => {
                    eprintln!(
                        "test-dra-driver: NodePrepareResources ({version}) {what} failed: {error}"
                    );
                    dra::NodePrepareResourceResponse {
                        devices: Vec::new(),
                        error,
                    }
                }
            };
            response.claims.insert(claim.uid, answer);
        }
        response
    }

    /// NodeUnprepareResources of API `version`.
    fn unprepare_all(
        &self,
        version: &str,
        claims: Vec<dra::Claim>,
    ) -> dra::NodeUnprepareResourcesResponse {
        let mut response = dra::NodeUnprepareResourcesResponse::default();
        for claim in claims {
            let had = self.prepared.lock().unwrap().remove(&claim.uid);
            eprintln!(
                "test-dra-driver: NodeUnprepareResources ({version}) {}/{} ({}): {}",
                claim.namespace,
                claim.name,
                claim.uid,
                had.as_deref().unwrap_or("not prepared by this process")
            );
            response
                .claims
                .insert(claim.uid, dra::NodeUnprepareResourceResponse::default());
        }
        response
    }
}

#[tonic::async_trait]
impl api::dra::v1::dra_plugin_server::DraPlugin for Driver {
    async fn node_prepare_resources(
        &self,
        request: Request<dra::NodePrepareResourcesRequest>,
    ) -> Result<Response<dra::NodePrepareResourcesResponse>, Status> {
        Ok(Response::new(
            self.prepare_all("v1", request.into_inner().claims).await,
        ))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<dra::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<dra::NodeUnprepareResourcesResponse>, Status> {
        Ok(Response::new(
            self.unprepare_all("v1", request.into_inner().claims),
        ))
    }
}

/// v1beta1: the same messages (see `proto/dra_v1beta1.proto`).
#[tonic::async_trait]
impl api::dra::v1beta1::dra_plugin_server::DraPlugin for Driver {
    async fn node_prepare_resources(
        &self,
        request: Request<dra::NodePrepareResourcesRequest>,
    ) -> Result<Response<dra::NodePrepareResourcesResponse>, Status> {
        Ok(Response::new(
            self.prepare_all("v1beta1", request.into_inner().claims)
                .await,
        ))
    }

    async fn node_unprepare_resources(
        &self,
        request: Request<dra::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<dra::NodeUnprepareResourcesResponse>, Status> {
        Ok(Response::new(
            self.unprepare_all("v1beta1", request.into_inner().claims),
        ))
    }
}

async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig (--kubeconfig, KUBECONFIG)")?,
    };
    Client::try_from(config).context("building the API client")
}

/// Binds a unix socket at `path`, replacing a stale one.
fn listen(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))
}

/// SIGTERM and SIGINT, caught from the start so that a stop during
/// start-up still cleans up.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopSignals")
    }
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
        })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut signals = StopSignals::new()?;
    let services = supported_services(&args.api_versions)?;
    let node = args.node.clone().unwrap_or_else(multus_e2e::host_name);
    anyhow::ensure!(!node.is_empty(), "no node name (--node)");
    let slice = Slice {
        driver: args.driver.clone(),
        pool: args.pool.clone().unwrap_or_else(|| node.clone()),
        node,
        resource: args.resource.clone(),
        devices: args.devices.clone(),
        bare_devices: args.bare_devices.clone(),
    };
    let client = client(args.kubeconfig.as_deref()).await?;
    let classes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource_api("DeviceClass", "deviceclasses"),
    );
    let slices: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource_api("ResourceSlice", "resourceslices"),
    );

    let running = run(
        &args,
        &slice,
        &services,
        client,
        &classes,
        &slices,
        &mut signals,
    )
    .await;

    eprintln!("test-dra-driver: stopping");
    let mut cleanup = Vec::new();
    if let Err(e) = delete(&slices, "ResourceSlice", &slice.name()).await {
        cleanup.push(format!("{e:#}"));
    }
    if let Err(e) = delete(&classes, "DeviceClass", &args.driver).await {
        cleanup.push(format!("{e:#}"));
    }
    running?;
    anyhow::ensure!(cleanup.is_empty(), "cleanup: {}", cleanup.join("; "));
    Ok(())
}

/// Publishes the objects, serves the kubelet until a stop signal, then
/// removes the sockets (the API objects are the caller's to delete).
async fn run(
    args: &Args,
    slice: &Slice,
    services: &[String],
    client: Client,
    classes: &Api<DynamicObject>,
    slices: &Api<DynamicObject>,
    signals: &mut StopSignals,
) -> anyhow::Result<()> {
    apply(classes, &device_class(&args.driver)).await?;
    apply(slices, &slice.object()).await?;
    eprintln!(
        "test-dra-driver: published DeviceClass {} and ResourceSlice {} (pool {}, devices {}; bare {})",
        args.driver,
        slice.name(),
        slice.pool,
        slice.devices.join(","),
        slice.bare_devices.join(",")
    );

    let driver = Driver {
        name: args.driver.clone(),
        client,
        claims: resource_api("ResourceClaim", "resourceclaims"),
        prepared: Arc::default(),
    };
    let plugin_dir = args.plugins_dir.join(&args.driver);
    let dra_socket = plugin_dir.join("dra.sock");
    let registration_socket = args.registry_dir.join(format!("{}-reg.sock", args.driver));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // The DRA service first: the kubelet may call it right after it
    // registered the plugin.
    let dra_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(api::dra::v1::dra_plugin_server::DraPluginServer::new(
                driver.clone(),
            ))
            .add_service(api::dra::v1beta1::dra_plugin_server::DraPluginServer::new(
                driver,
            ))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listen(&dra_socket)?),
                stopped(stop_rx.clone()),
            ),
    );
    let registration = Registration::new(reg::PluginInfo {
        r#type: "DRAPlugin".into(),
        name: args.driver.clone(),
        endpoint: dra_socket.to_string_lossy().into_owned(),
        supported_versions: services.to_vec(),
    });
    let registration_server = match listen(&registration_socket) {
        Ok(listener) => tokio::spawn(registration.serve(listener, stopped(stop_rx))),
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = std::fs::remove_file(&dra_socket);
            return Err(e);
        }
    };
    eprintln!(
        "test-dra-driver: serving {} on {}, registration on {}",
        services.join(", "),
        dra_socket.display(),
        registration_socket.display()
    );

    loop {
        tokio::select! {
            () = signals.recv() => break,
            _ = tokio::time::sleep(REPUBLISH) => {
                if let Err(e) = apply(slices, &slice.object()).await {
                    eprintln!("test-dra-driver: {e:#}; retrying");
                }
            }
        }
    }

    // The registration socket first: the kubelet then unregisters the
    // plugin and stops calling it.
    let _ = std::fs::remove_file(&registration_socket);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), registration_server).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), dra_server).await;
    let _ = std::fs::remove_file(&dra_socket);
    let _ = std::fs::remove_dir(&plugin_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice() -> Slice {
        Slice {
            driver: "e2e-dra.example.com".into(),
            node: "node-a".into(),
            pool: "node-a".into(),
            resource: "e2e.example.com/dranic".into(),
            devices: vec!["dnic-0".into(), "dnic-1".into()],
            bare_devices: vec!["dbare-0".into()],
        }
    }

    #[test]
    fn the_slice_lists_attributed_then_bare_devices_for_the_node() {
        let object = slice().object();
        assert_eq!(object["apiVersion"], "resource.k8s.io/v1");
        assert_eq!(object["kind"], "ResourceSlice");
        assert_eq!(
            object["metadata"]["name"], "e2e-dra-example-com-node-a",
            "{object}"
        );
        assert_eq!(
            object["spec"],
            json!({
                "driver": "e2e-dra.example.com",
                "nodeName": "node-a",
                "pool": {"name": "node-a", "generation": 1, "resourceSliceCount": 1},
                "devices": [
                    {"name": "dnic-0", "attributes": {
                        "k8s.cni.cncf.io/resourceName": {"string": "e2e.example.com/dranic"},
                        "k8s.cni.cncf.io/deviceID": {"string": "0000:00:1d.0"},
                    }},
                    {"name": "dnic-1", "attributes": {
                        "k8s.cni.cncf.io/resourceName": {"string": "e2e.example.com/dranic"},
                        "k8s.cni.cncf.io/deviceID": {"string": "0000:00:1d.1"},
                    }},
                    {"name": "dbare-0"},
                ],
            })
        );
    }

    #[test]
    fn pci_addresses_stay_valid_past_eight_devices() {
        assert_eq!(pci_address(0), "0000:00:1d.0");
        assert_eq!(pci_address(7), "0000:00:1d.7");
        assert_eq!(pci_address(8), "0000:00:1e.0");
        assert_eq!(pci_address(18), "0000:00:1f.2");
    }

    #[test]
    fn the_device_class_selects_the_driver_by_cel() {
        let class = device_class("e2e-dra.example.com");
        assert_eq!(class["metadata"]["name"], "e2e-dra.example.com");
        assert_eq!(
            class["spec"]["selectors"],
            json!([{"cel": {"expression": "device.driver == \"e2e-dra.example.com\""}}])
        );
    }

    #[test]
    fn only_this_drivers_results_of_a_claim_are_prepared() {
        let claim = json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u-1"},
            "status": {"allocation": {"devices": {"results": [
                {"request": "nic", "driver": "e2e-dra.example.com", "pool": "node-a", "device": "dnic-1"},
                {"request": "gpu", "driver": "gpu.example.com", "pool": "node-a", "device": "gpu-0"},
                {"request": "nic2", "driver": "e2e-dra.example.com", "pool": "node-a", "device": "dbare-0"},
            ]}}},
        });
        let devices = allocated_devices(&claim, "e2e-dra.example.com").unwrap();
        assert_eq!(
            devices,
            vec![
                dra::Device {
                    request_names: vec!["nic".into()],
                    pool_name: "node-a".into(),
                    device_name: "dnic-1".into(),
                    cdi_device_ids: vec![],
                },
                dra::Device {
                    request_names: vec!["nic2".into()],
                    pool_name: "node-a".into(),
                    device_name: "dbare-0".into(),
                    cdi_device_ids: vec![],
                },
            ]
        );
        assert_eq!(describe(&devices), "nic/node-a/dnic-1, nic2/node-a/dbare-0");
    }

    #[test]
    fn an_unallocated_claim_is_an_error() {
        let claim = json!({"metadata": {"name": "c"}, "status": {}});
        assert_eq!(
            allocated_devices(&claim, "e2e-dra.example.com"),
            Err("the claim is not allocated".to_owned())
        );
    }

    #[test]
    fn both_dra_service_versions_can_be_offered_in_any_order() {
        let versions = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            supported_services(&versions(&["v1", "v1beta1"])).unwrap(),
            ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
        );
        assert_eq!(
            supported_services(&versions(&["v1beta1"])).unwrap(),
            ["v1beta1.DRAPlugin"]
        );
        assert!(supported_services(&versions(&["v2"])).is_err());
    }
}
