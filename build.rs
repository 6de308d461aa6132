//! Records the commit the binary is built from (`NANO_ANALYST_COMMIT`), so that an
//! evaluation report and `--version` name the build their figures come from. A tree with
//! uncommitted changes to tracked files is marked `-dirty`; without git it is `unknown`.

use std::process::Command;

fn main() {
    for path in [".git/HEAD", ".git/index", ".git/refs", "src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = git(&["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=NANO_ANALYST_COMMIT={commit}{suffix}");
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
