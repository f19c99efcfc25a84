//! The agent's image: references (`repo:tag`, `repo@sha256:...`), the
//! spec's image over the operator's default, and its pull secrets.

use std::fmt;

use k8s_openapi::api::core::v1::LocalObjectReference;
use multus_config::crd::MultusConfigSpec;

/// An image reference split into repository and tag (or `sha256:` digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry and path, e.g. `ghcr.io/multus-rs/multus`.
    pub repository: String,
    /// Tag (`v0.1.0`) or digest (`sha256:...`).
    pub tag: String,
}

impl ImageRef {
    /// The compiled-in default: our repository at this operator's version.
    pub fn builtin() -> Self {
        Self {
            repository: multus_config::crd::multus_config::DEFAULT_IMAGE_REPOSITORY.to_owned(),
            tag: format!("v{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Parses `repo:tag`, `repo@sha256:...` or a bare `repo` (tag
    /// `latest`). `None` for an empty or blank reference.
    pub fn parse(reference: &str) -> Option<Self> {
        let reference = reference.trim();
        if reference.is_empty() {
            return None;
        }
        if let Some((repository, digest)) = reference.split_once('@') {
            return Some(Self {
                repository: repository.to_owned(),
                tag: digest.to_owned(),
            });
        }
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[last_slash..].rfind(':') {
            Some(colon) => {
                let split = last_slash + colon;
                Some(Self {
                    repository: reference[..split].to_owned(),
                    tag: reference[split + 1..].to_owned(),
                })
            }
            None => Some(Self {
                repository: reference.to_owned(),
                tag: "latest".to_owned(),
            }),
        }
    }

    /// The image of a spec: its repository and tag where set, the
    /// defaults' where not.
    pub fn for_spec(spec: &MultusConfigSpec, default: &Self) -> Self {
        let image = spec.image.as_ref();
        Self {
            repository: image
                .and_then(|i| i.repository.clone())
                .unwrap_or_else(|| default.repository.clone()),
            tag: image
                .and_then(|i| i.tag.clone())
                .unwrap_or_else(|| default.tag.clone()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = self.tag.strip_prefix('@').unwrap_or(&self.tag);
        if tag.contains(':') {
            write!(f, "{}@{tag}", self.repository)
        } else {
            write!(f, "{}:{tag}", self.repository)
        }
    }
}

/// The spec's image pull secrets, `None` when it lists none.
pub(super) fn image_pull_secrets(spec: &MultusConfigSpec) -> Option<Vec<LocalObjectReference>> {
    spec.image
        .as_ref()
        .and_then(|i| i.pull_secrets.as_ref())
        .filter(|s| !s.is_empty())
        .map(|secrets| {
            secrets
                .iter()
                .map(|s| LocalObjectReference { name: s.clone() })
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_config::crd::multus_config::ImageSpec;

    #[test]
    fn image_references_parse_and_print() {
        let cases = [
            ("ghcr.io/a/b:v1", "ghcr.io/a/b", "v1", "ghcr.io/a/b:v1"),
            (
                "localhost:5000/b",
                "localhost:5000/b",
                "latest",
                "localhost:5000/b:latest",
            ),
            (
                "localhost:5000/b:t",
                "localhost:5000/b",
                "t",
                "localhost:5000/b:t",
            ),
            ("r/b@sha256:abc", "r/b", "sha256:abc", "r/b@sha256:abc"),
        ];
        for (text, repo, tag, shown) in cases {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!((image.repository.as_str(), image.tag.as_str()), (repo, tag));
            assert_eq!(image.to_string(), shown);
        }
        assert_eq!(ImageRef::parse("  "), None);
        let digest = ImageRef {
            repository: "r".into(),
            tag: "@sha256:00".into(),
        };
        assert_eq!(digest.to_string(), "r@sha256:00");
    }

    #[test]
    fn spec_image_fields_override_the_default_one_by_one() {
        let default = ImageRef::parse("d/img:v1").unwrap();
        let spec = MultusConfigSpec {
            image: Some(ImageSpec {
                tag: Some("v2".into()),
                ..ImageSpec::default()
            }),
            ..MultusConfigSpec::default()
        };
        assert_eq!(ImageRef::for_spec(&spec, &default).to_string(), "d/img:v2");
        assert_eq!(
            ImageRef::for_spec(&MultusConfigSpec::default(), &default).to_string(),
            "d/img:v1"
        );
        assert!(ImageRef::builtin().tag.starts_with('v'));
    }
}
