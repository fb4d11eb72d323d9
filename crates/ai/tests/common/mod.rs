//! What the embedded-model test files share.

use std::path::PathBuf;

/// The model the tests use: `COLLOQUY_TEST_MODEL`, or the file
/// `scripts/setup-models.sh` puts in the workspace's `data/models/`. A
/// missing model fails the tests: they never skip silently.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("COLLOQUY_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "test model {} is missing: run `scripts/setup-models.sh` from the workspace root \
         (or set COLLOQUY_TEST_MODEL)",
        path.display()
    );
    path
}
