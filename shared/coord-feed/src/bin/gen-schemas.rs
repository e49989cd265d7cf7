//! Writes the JSON Schema of every event type at its current version into
//! `shared/coord-feed/schemas/`, generated from the domain's Rust types.
//!
//! A published version is never rewritten: if a type's shape changed, bump its enum's
//! `SCHEMA_VERSION` and add an upcast. `--overwrite-published` rewrites the current
//! version's file anyway (only for shapes nobody has consumed yet, e.g. at a merge
//! before a release).

#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() -> Result<(), String> {
    let overwrite = std::env::args().any(|a| a == "--overwrite-published");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut refused = Vec::new();
    for info in coord_feed::catalog() {
        let file = dir.join(format!("{}.json", info.ce_type(info.version)));
        let text = serde_json::to_string_pretty(&info.schema).map_err(|e| e.to_string())? + "\n";
        match std::fs::read_to_string(&file) {
            Ok(old) if old == text => continue,
            Ok(_) if !overwrite => {
                refused.push(info.ce_type(info.version));
                continue;
            }
            _ => {}
        }
        std::fs::write(&file, text).map_err(|e| e.to_string())?;
        println!("wrote {}", file.display());
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "these published schemas changed shape: {refused:?}; bump the enum's SCHEMA_VERSION \
             (with an upcast), or rerun with --overwrite-published if no consumer has seen them"
        ))
    }
}
