//! `multus-operator crd`: the generated CRDs as YAML, on stdout or as one
//! file per CRD.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use multus_config::crd::{crd_file_name, crd_yaml, generated_crds, generated_crds_yaml};

/// Prints every generated CRD, or writes them into `output_dir`.
pub fn run(output_dir: Option<&Path>) -> anyhow::Result<()> {
    match output_dir {
        None => {
            let yaml = generated_crds_yaml().context("cannot render the CRDs as YAML")?;
            let mut out = std::io::stdout().lock();
            out.write_all(yaml.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the CRDs to stdout")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for crd in generated_crds() {
                let path = dir.join(crd_file_name(&crd));
                let yaml = crd_yaml(&crd).context("cannot render a CRD as YAML")?;
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
    }
}
