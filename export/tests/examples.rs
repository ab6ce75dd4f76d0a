//! The YAML export of every example config (and every valid test config) parses back to the
//! same config, and exports to the same text again.

mod common;

use std::path::Path;

#[test]
fn every_example_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = common::yaml_files(&root.join("examples"));
    files.extend(
        common::yaml_files(&root.join("tests/configs"))
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("valid"))
            }),
    );
    assert!(files.len() >= 4, "examples not found: {files:?}");
    for file in files {
        let config = trellis_config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        common::assert_round_trip(&config, &file.display().to_string());
    }
}
