//! The plugin's kubeconfig and the token file it references.
//!
//! `<cni-conf-dir>/multus.d/multus.kubeconfig` (0600) names the API server,
//! the cluster CA and a `tokenFile` at the *host* path of
//! `<cni-conf-dir>/multus.d/token` (0600). Who writes the token file
//! depends on [`TokenSource`]: with [`TokenSource::CopyServiceAccount`]
//! this module keeps it equal to the agent's projected service-account
//! token, copying it again whenever the service-account directory changes
//! (the kubelet swaps a `..data` symlink there); with
//! [`TokenSource::Managed`] the credential keeper
//! ([`super::credential`]) is its only writer, and this module writes the
//! kubeconfig only once the token file exists, so the kubeconfig never
//! names a missing file.

use std::path::{Path, PathBuf};

use multus_config::generate::{KubeconfigParams, hex_sha256, render_kubeconfig};

use super::fsutil::{self, IoError, WriteOutcome};

/// File name of the kubeconfig in `multus.d/`.
pub const KUBECONFIG_FILE: &str = "multus.kubeconfig";
/// File name of the token copy in `multus.d/`.
pub const TOKEN_FILE: &str = "token";
/// File name of the token in the service-account directory.
pub const SA_TOKEN: &str = "token";
/// File name of the CA bundle in the service-account directory.
pub const SA_CA: &str = "ca.crt";

/// Who writes the token file the kubeconfig names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenSource {
    /// [`sync_kubeconfig`] copies the agent's projected token (`--once`,
    /// `--no-kube`, no plugin ServiceAccount configured).
    #[default]
    CopyServiceAccount,
    /// The credential keeper writes it; [`sync_kubeconfig`] only reads it.
    Managed,
}

/// Where the kubeconfig inputs come from and where the files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigPaths {
    /// The projected service-account directory (container path).
    pub service_account_dir: PathBuf,
    /// `<cni-conf-dir>/multus.d` (container path).
    pub multus_d: PathBuf,
    /// `<host-cni-conf-dir>/multus.d` (host path, written into the files).
    pub host_multus_d: PathBuf,
    /// API server URL, `None` when `KUBERNETES_SERVICE_HOST/PORT` are unset.
    pub server: Option<String>,
    /// Who writes the token file.
    pub token_source: TokenSource,
}

impl KubeconfigPaths {
    /// Container path of the kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.multus_d.join(KUBECONFIG_FILE)
    }

    /// Container path of the token copy.
    pub fn token(&self) -> PathBuf {
        self.multus_d.join(TOKEN_FILE)
    }

    /// Host path of the kubeconfig (what `00-multus.conf` names).
    pub fn host_kubeconfig(&self) -> PathBuf {
        self.host_multus_d.join(KUBECONFIG_FILE)
    }

    /// Host path of the token copy (what the kubeconfig names).
    pub fn host_token(&self) -> PathBuf {
        self.host_multus_d.join(TOKEN_FILE)
    }
}

/// What a kubeconfig sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigState {
    /// The agent does not manage a kubeconfig, and why (no service-account
    /// token, no API server address). The plugin then gets no `kubeconfig`
    /// key unless the config file names one.
    Disabled(String),
    /// Both files are current.
    Current {
        /// SHA-256 of the token copy.
        token_hash: String,
        /// SHA-256 of the kubeconfig.
        kubeconfig_hash: String,
        /// Whether the token was rewritten by this sync.
        token_written: bool,
        /// Whether the kubeconfig was rewritten by this sync.
        kubeconfig_written: bool,
    },
}

/// Why the kubeconfig could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Reading an input or writing an output failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The projected token is empty; the previous copy is kept.
    #[error("the service-account token {} is empty; keeping the previous copy", .0.display())]
    EmptyToken(PathBuf),
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IoError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("read", path, e)),
    }
}

/// Brings the token copy (unless [`TokenSource::Managed`]) and the
/// kubeconfig up to date (token first, so the kubeconfig never names a
/// missing token). Identical files are not rewritten. Creates `multus.d/`
/// when needed; `created_dir` is set when it did so.
pub fn sync_kubeconfig(
    paths: &KubeconfigPaths,
    created_dir: &mut bool,
) -> Result<KubeconfigState, KubeconfigError> {
    let Some(server) = &paths.server else {
        return Ok(KubeconfigState::Disabled(
            "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set".to_owned(),
        ));
    };
    let (token, token_written) = match paths.token_source {
        TokenSource::CopyServiceAccount => {
            let token_source = paths.service_account_dir.join(SA_TOKEN);
            let Some(token) = read_optional(&token_source)? else {
                return Ok(KubeconfigState::Disabled(format!(
                    "no service-account token at {}",
                    token_source.display()
                )));
            };
            if token.iter().all(u8::is_ascii_whitespace) {
                return Err(KubeconfigError::EmptyToken(token_source));
            }
            if fsutil::ensure_dir(&paths.multus_d)? {
                *created_dir = true;
            }
            let written = fsutil::write_atomic(&paths.token(), &token, 0o600)?;
            (token, written == WriteOutcome::Written)
        }
        TokenSource::Managed => match read_optional(&paths.token())? {
            Some(token) if !token.iter().all(u8::is_ascii_whitespace) => (token, false),
            _ => {
                return Ok(KubeconfigState::Disabled(format!(
                    "no token for the plugin at {} yet",
                    paths.token().display()
                )));
            }
        },
    };
    let ca_pem = read_optional(&paths.service_account_dir.join(SA_CA))?;
    let text = render_kubeconfig(&KubeconfigParams {
        server: server.clone(),
        ca_pem,
        token_file: paths.host_token().to_string_lossy().into_owned(),
    });
    let kubeconfig_written = fsutil::write_atomic(&paths.kubeconfig(), text.as_bytes(), 0o600)?;
    Ok(KubeconfigState::Current {
        token_hash: hex_sha256(&token),
        kubeconfig_hash: hex_sha256(text.as_bytes()),
        token_written,
        kubeconfig_written: kubeconfig_written == WriteOutcome::Written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, KubeconfigPaths) {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("token"), b"token-1").unwrap();
        std::fs::write(sa.join("ca.crt"), b"-----BEGIN CERTIFICATE-----\n").unwrap();
        let paths = KubeconfigPaths {
            service_account_dir: sa,
            multus_d: dir.path().join("net.d/multus.d"),
            host_multus_d: PathBuf::from("/etc/cni/net.d/multus.d"),
            server: Some("https://[fd00::1]:443".to_owned()),
            token_source: TokenSource::CopyServiceAccount,
        };
        (dir, paths)
    }

    #[test]
    fn writes_token_and_kubeconfig_with_host_paths() {
        let (_dir, paths) = setup();
        let mut created = false;
        let state = sync_kubeconfig(&paths, &mut created).unwrap();
        assert!(created);
        assert!(matches!(
            state,
            KubeconfigState::Current {
                token_written: true,
                kubeconfig_written: true,
                ..
            }
        ));
        assert_eq!(std::fs::read(paths.token()).unwrap(), b"token-1");
        let text = std::fs::read_to_string(paths.kubeconfig()).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["users"][0]["user"]["tokenFile"],
            "/etc/cni/net.d/multus.d/token"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://[fd00::1]:443"
        );
        for path in [paths.token(), paths.kubeconfig()] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        // nothing changed: nothing rewritten
        let mut created = false;
        let state = sync_kubeconfig(&paths, &mut created).unwrap();
        assert!(!created);
        assert!(matches!(
            state,
            KubeconfigState::Current {
                token_written: false,
                kubeconfig_written: false,
                ..
            }
        ));
        // a new token is copied, the kubeconfig stays
        std::fs::write(paths.service_account_dir.join("token"), b"token-2").unwrap();
        let state = sync_kubeconfig(&paths, &mut created).unwrap();
        assert!(matches!(
            state,
            KubeconfigState::Current {
                token_written: true,
                kubeconfig_written: false,
                ..
            }
        ));
        assert_eq!(std::fs::read(paths.token()).unwrap(), b"token-2");
    }

    #[test]
    fn a_managed_token_is_only_read_and_must_exist_first() {
        let (_dir, mut paths) = setup();
        paths.token_source = TokenSource::Managed;
        let mut created = false;
        // No token file yet: no kubeconfig naming it.
        let state = sync_kubeconfig(&paths, &mut created).unwrap();
        assert!(
            matches!(&state, KubeconfigState::Disabled(why) if why.contains("no token for the plugin")),
            "{state:?}"
        );
        assert!(!paths.kubeconfig().exists());
        std::fs::create_dir_all(&paths.multus_d).unwrap();
        std::fs::write(paths.token(), b"plugin-token").unwrap();
        let state = sync_kubeconfig(&paths, &mut created).unwrap();
        assert!(matches!(
            state,
            KubeconfigState::Current {
                token_written: false,
                kubeconfig_written: true,
                ..
            }
        ));
        // The projected token is never copied over the plugin's.
        assert_eq!(std::fs::read(paths.token()).unwrap(), b"plugin-token");
        assert!(paths.kubeconfig().exists());
    }

    #[test]
    fn disabled_without_server_or_token_and_empty_token_keeps_the_copy() {
        let (_dir, mut paths) = setup();
        let mut created = false;
        sync_kubeconfig(&paths, &mut created).unwrap();
        std::fs::write(paths.service_account_dir.join("token"), b"\n").unwrap();
        let err = sync_kubeconfig(&paths, &mut created).unwrap_err();
        assert!(matches!(err, KubeconfigError::EmptyToken(_)));
        assert_eq!(std::fs::read(paths.token()).unwrap(), b"token-1");
        std::fs::remove_file(paths.service_account_dir.join("token")).unwrap();
        assert!(matches!(
            sync_kubeconfig(&paths, &mut created).unwrap(),
            KubeconfigState::Disabled(_)
        ));
        paths.server = None;
        assert!(matches!(
            sync_kubeconfig(&paths, &mut created).unwrap(),
            KubeconfigState::Disabled(_)
        ));
    }
}
