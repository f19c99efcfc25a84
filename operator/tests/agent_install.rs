//! Installing the plugin over a copy that is running right now: a rename,
//! never an in-place write ("text file busy").

mod agent_common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use agent_common::*;

/// A real ELF executable to run (shell scripts are not mapped, so they would
/// never be "busy").
fn elf(name: &str) -> Option<std::path::PathBuf> {
    ["/bin", "/usr/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF")))
}

#[test]
fn installs_over_a_running_binary_without_text_file_busy() {
    let (Some(sleep), Some(true_bin)) = (elf("sleep"), elf("true")) else {
        eprintln!("SKIPPED: no ELF sleep/true binaries on this system");
        return;
    };
    let mut host = Host::new();
    std::fs::write(host.conf.join("10-calico.conflist"), calico()).unwrap();
    // the old plugin, running (blocked, like a shim waiting on a socket)
    let installed = host.bin.join("multus");
    std::fs::copy(&sleep, &installed).unwrap();
    std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut running = Command::new(&installed)
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // an in-place write would fail now
    let busy = std::fs::OpenOptions::new().write(true).open(&installed);
    assert_eq!(
        busy.err().and_then(|e| e.raw_os_error()),
        Some(nix::errno::Errno::ETXTBSY as i32),
        "the running binary must be busy for this test to mean anything"
    );

    // the new plugin
    let new_plugin = host.root.path().join("image/multus-new");
    std::fs::copy(&true_bin, &new_plugin).unwrap();
    host.plugin = new_plugin.clone();
    let (ok, stderr) = run({
        let mut c = host.command();
        c.arg("--once");
        c
    });
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&new_plugin).unwrap()
    );
    assert_eq!(mode_of(&installed), 0o755);
    // the old process kept running from the replaced file
    assert!(running.try_wait().unwrap().is_none());
    running.kill().unwrap();
    running.wait().unwrap();
}
