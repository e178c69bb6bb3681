//! The committed FlatBuffers code must be what the pinned flatc makes of the schema.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_generated_code_matches_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("theta-flatc-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("bash")
        .arg(root.join("scripts/gen-flatbuffers.sh"))
        .arg(&out)
        .status()
        .expect(
            "run scripts/gen-flatbuffers.sh (needs flatc: scripts/install-tools.sh installs it)",
        );
    assert!(status.success(), "scripts/gen-flatbuffers.sh failed: is the pinned flatc installed? Run scripts/install-tools.sh");
    let fresh = std::fs::read_to_string(out.join("theta_generated.rs")).unwrap();
    let committed = std::fs::read_to_string(root.join("src/wire/theta_generated.rs")).unwrap();
    std::fs::remove_dir_all(&out).ok();
    assert!(
        fresh == committed,
        "src/wire/theta_generated.rs is stale: run scripts/gen-flatbuffers.sh and commit the result"
    );
}
