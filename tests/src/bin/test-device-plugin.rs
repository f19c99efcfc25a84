//! A minimal kubelet device plugin (API v1beta1) for the device tests: it
//! advertises a fixed set of fake devices of one extended resource (e.g.
//! `example.com/nic`) to the real kubelet of the node it runs on.
//!
//! It serves `DevicePlugin` on its own socket in the kubelet's
//! device-plugins directory, registers with the kubelet's
//! `Registration` service (`kubelet.sock` there), keeps `ListAndWatch` open
//! with every device healthy, and answers `Allocate` with an environment
//! variable naming the allocated IDs. With `--device-info-dir` it also
//! writes the multi-network device-info file of each allocated device
//! (`<dir>/dp/<resource>-<id>-device.json`, type `pci` with a made-up
//! address), as SR-IOV device plugins do. It registers again when the
//! kubelet restarts (its socket is recreated), and on SIGTERM/SIGINT
//! removes its socket and the device-info files it wrote.
//!
//! ```text
//! test-device-plugin --resource example.com/nic --devices nic-0,nic-1,nic-2
//! ```

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use hyper_util::rt::TokioIo;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

#[allow(clippy::all, missing_docs, missing_debug_implementations)]
mod api {
    include!(concat!(env!("OUT_DIR"), "/v1beta1.rs"));
}

use api::device_plugin_server::{DevicePlugin, DevicePluginServer};
use api::registration_client::RegistrationClient;

#[derive(Debug, Parser)]
#[command(about = "A fake-device kubelet device plugin for tests")]
struct Args {
    /// The extended resource to advertise, vendor-domain/type.
    #[arg(long, default_value = "example.com/nic")]
    resource: String,
    /// The device IDs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "nic-0,nic-1,nic-2")]
    devices: Vec<String>,
    /// The kubelet's device-plugins directory.
    #[arg(long, default_value = "/var/lib/kubelet/device-plugins")]
    dir: PathBuf,
    /// Base directory to write device-info files to (`dp/` below it);
    /// unset: none are written.
    #[arg(long)]
    device_info_dir: Option<PathBuf>,
}

/// The plugin's state, shared by its gRPC handlers.
#[derive(Debug, Clone)]
struct Plugin {
    resource: String,
    devices: Vec<String>,
    device_info_dir: Option<PathBuf>,
    written: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl Plugin {
    fn device_info_file(&self, id: &str) -> Option<PathBuf> {
        let dir = self.device_info_dir.as_ref()?;
        Some(dir.join("dp").join(format!(
            "{}-{}-device.json",
            self.resource.replace('/', "-"),
            id.replace('/', "-")
        )))
    }

    /// A made-up PCI address per device, stable across runs.
    fn pci_address(&self, id: &str) -> String {
        let index = self.devices.iter().position(|d| d == id).unwrap_or(0);
        format!("0000:ee:00.{index}")
    }

    fn write_device_info(&self, id: &str) {
        let Some(path) = self.device_info_file(id) else {
            return;
        };
        let info = serde_json::json!({
            "type": "pci", "version": "1.1.0",
            "pci": {"pci-address": self.pci_address(id)}
        });
        let result = std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
            .and_then(|()| std::fs::write(&path, info.to_string()));
        match result {
            Ok(()) => {
                self.written.lock().unwrap().insert(path);
            }
            Err(e) => eprintln!("test-device-plugin: cannot write {}: {e}", path.display()),
        }
    }

    fn remove_device_info(&self) {
        for path in std::mem::take(&mut *self.written.lock().unwrap()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

type DeviceStream =
    Pin<Box<dyn Stream<Item = Result<api::ListAndWatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DevicePlugin for Plugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<api::DevicePluginOptions>, Status> {
        Ok(Response::new(api::DevicePluginOptions::default()))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let devices = self
            .devices
            .iter()
            .map(|id| api::Device {
                id: id.clone(),
                health: "Healthy".into(),
            })
            .collect();
        let first = api::ListAndWatchResponse { devices };
        // One list, then the stream stays open: the devices never change.
        let stream =
            tokio_stream::StreamExt::chain(tokio_stream::once(Ok(first)), tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        _: Request<api::PreferredAllocationRequest>,
    ) -> Result<Response<api::PreferredAllocationResponse>, Status> {
        Ok(Response::new(api::PreferredAllocationResponse::default()))
    }

    async fn allocate(
        &self,
        request: Request<api::AllocateRequest>,
    ) -> Result<Response<api::AllocateResponse>, Status> {
        let mut responses = Vec::new();
        for container in request.into_inner().container_requests {
            eprintln!("test-device-plugin: allocate {:?}", container.devices_ids);
            for id in &container.devices_ids {
                self.write_device_info(id);
            }
            let variable = format!(
                "TEST_DEVICE_{}",
                self.resource
                    .to_ascii_uppercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            );
            responses.push(api::ContainerAllocateResponse {
                envs: [(variable, container.devices_ids.join(","))].into(),
            });
        }
        Ok(Response::new(api::AllocateResponse {
            container_responses: responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<api::PreStartContainerRequest>,
    ) -> Result<Response<api::PreStartContainerResponse>, Status> {
        Ok(Response::new(api::PreStartContainerResponse {}))
    }
}

/// Registers `endpoint` (a socket file name in `dir`) with the kubelet.
async fn register(dir: &Path, endpoint: &str, resource: &str) -> Result<(), String> {
    let kubelet = dir.join("kubelet.sock");
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_| {
            let kubelet = kubelet.clone();
            async move {
                tokio::net::UnixStream::connect(kubelet)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .map_err(|e| format!("cannot reach the kubelet: {e:?}"))?;
    RegistrationClient::new(channel)
        .register(api::RegisterRequest {
            version: "v1beta1".into(),
            endpoint: endpoint.into(),
            resource_name: resource.into(),
            options: Some(api::DevicePluginOptions::default()),
        })
        .await
        .map_err(|s| format!("the kubelet refused the registration: {s}"))?;
    Ok(())
}

/// The inode of the kubelet's socket, to notice a kubelet restart.
fn kubelet_socket_id(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir.join("kubelet.sock"))
        .ok()
        .map(|m| m.ino())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let endpoint = format!(
        "test-device-plugin-{}.sock",
        args.resource
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let socket = args.dir.join(&endpoint);
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    let plugin = Plugin {
        resource: args.resource.clone(),
        devices: args.devices.clone(),
        device_info_dir: args.device_info_dir.clone(),
        written: Arc::default(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DevicePluginServer::new(plugin.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );

    let mut registered_with = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    loop {
        let current = kubelet_socket_id(&args.dir);
        if current.is_some() && current != registered_with {
            match register(&args.dir, &endpoint, &args.resource).await {
                Ok(()) => {
                    eprintln!(
                        "test-device-plugin: registered {} with {} devices ({}) on {}",
                        args.resource,
                        args.devices.len(),
                        args.devices.join(","),
                        socket.display()
                    );
                    registered_with = current;
                }
                Err(e) => eprintln!("test-device-plugin: {e}; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("test-device-plugin: stopping");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&socket);
    plugin.remove_device_info();
    Ok(())
}
