//! Records the git commit the binary is built from, for `spate --version`, the ready log line
//! and the `spate_build_info` metric. `SPATE_GIT_COMMIT` overrides it (a build from a source
//! tarball has no `.git`); without either the commit is "unknown".

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SPATE_GIT_COMMIT");
    let commit = match std::env::var("SPATE_GIT_COMMIT") {
        Ok(commit) if !commit.is_empty() => commit,
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at
            // (a commit). In a worktree the branch lives in the common directory.
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                println!(
                    "cargo:rerun-if-changed={}",
                    PathBuf::from(&dir).join("HEAD").display()
                );
            }
            if let (Some(common), Some(reference)) = (
                git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                let path = PathBuf::from(common).join(reference);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=SPATE_GIT_COMMIT={commit}");
}
