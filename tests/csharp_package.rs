//! The Unity package's layout: a manifest Unity accepts, assembly definitions as the
//! design says (the core without UnityEngine, unsafe allowed), and a `.meta` with a unique
//! GUID beside every asset Unity imports (folders ending in `~` are not imported).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/unity")
}

fn json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(package().join(path)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_manifest_and_assembly_definitions_are_what_unity_needs() {
    let manifest = json("package.json");
    let name = manifest["name"].as_str().unwrap();
    assert!(
        name.split('.').count() >= 3 && name == name.to_lowercase(),
        "a reverse-domain name: {name}"
    );
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    assert!(manifest["unity"].as_str().unwrap().starts_with("20"));
    assert!(!manifest["description"].as_str().unwrap().is_empty());
    for sample in manifest["samples"].as_array().unwrap() {
        let path = sample["path"].as_str().unwrap();
        assert!(package().join(path).is_dir(), "sample {path}");
    }
    let core = json("Runtime/Core/Theta.asmdef");
    assert_eq!(core["name"], "Theta");
    assert_eq!(core["noEngineReferences"], true);
    assert_eq!(core["allowUnsafeCode"], true);
    let unity = json("Runtime/Unity/Theta.Unity.asmdef");
    assert_eq!(unity["references"][0], "Theta");
    assert_eq!(unity["noEngineReferences"], false);
}

/// Every file and folder Unity imports, relative to the package.
fn assets(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with('.') || name.ends_with('~') || name.ends_with(".meta") {
            continue;
        }
        out.push(path.strip_prefix(package()).unwrap().to_path_buf());
        if path.is_dir() {
            assets(&path, out);
        }
    }
}

#[test]
fn every_asset_has_a_meta_with_a_unique_guid() {
    let mut found = Vec::new();
    assets(&package(), &mut found);
    // The native libraries are built, not committed: their .meta files stand alone.
    let plugins = [
        "Plugins/Linux/x86_64/libtheta_net.so",
        "Plugins/Windows/x86_64/theta_net.dll",
        "Plugins/macOS/libtheta_net.dylib",
        "Plugins/Android/arm64-v8a/libtheta_net.so",
        "Plugins/iOS/libtheta_net.a",
    ];
    for plugin in plugins {
        let path = PathBuf::from(plugin);
        if !found.contains(&path) {
            found.push(path);
        }
    }
    let mut guids: HashMap<String, PathBuf> = HashMap::new();
    for asset in &found {
        let meta = package().join(format!("{}.meta", asset.display()));
        let text = std::fs::read_to_string(&meta)
            .unwrap_or_else(|_| panic!("{} has no .meta", asset.display()));
        let guid = text
            .lines()
            .find_map(|l| l.strip_prefix("guid: "))
            .unwrap_or_else(|| panic!("{} has no guid", meta.display()));
        assert!(
            guid.len() == 32 && guid.chars().all(|c| c.is_ascii_hexdigit()),
            "{guid}"
        );
        if let Some(other) = guids.insert(guid.to_owned(), asset.clone()) {
            panic!(
                "{} and {} share guid {guid}",
                asset.display(),
                other.display()
            );
        }
    }
    for plugin in plugins {
        let meta = std::fs::read_to_string(package().join(format!("{plugin}.meta"))).unwrap();
        assert!(
            meta.contains("PluginImporter:"),
            "{plugin}: import settings"
        );
    }
    let ios = std::fs::read_to_string(package().join("Plugins/iOS/libtheta_net.a.meta")).unwrap();
    assert!(ios.contains("iPhone: iOS") && ios.contains("Exclude iOS: 0"));
    let android =
        std::fs::read_to_string(package().join("Plugins/Android/arm64-v8a/libtheta_net.so.meta"))
            .unwrap();
    assert!(android.contains("CPU: ARM64"));
    assert!(found.len() > 30, "{} assets", found.len());
}
