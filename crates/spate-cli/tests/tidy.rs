//! Repository hygiene: every Rust source file under `crates/` opens with a `//!` doc saying
//! what it owns (rust-analyzer's tidy rule), and docs name files that exist.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    // Run-time, not env!(): a binary built in another checkout sharing the build cache must
    // check this checkout.
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run under cargo")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    assert!(files.len() > 20);
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("read");
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:#?}"
    );
}

#[test]
fn architecture_names_files_that_exist() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut checked = 0;
    for word in
        text.split(|c: char| c == '`' || c.is_whitespace() || c == '(' || c == ')' || c == ',')
    {
        let word = word.trim_end_matches(['.', ':', ';']);
        if word.starts_with("crates/") && word.ends_with(".rs") {
            assert!(
                root().join(word).exists(),
                "ARCHITECTURE.md names {word}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected ARCHITECTURE.md to name source files"
    );
}
