//! The Unreal plugin's pieces that can be checked without Unreal: its descriptor and module
//! layout, the build script staging the library and headers where the build rules and the
//! module's loader look for them, and the staged library loading by path and speaking the
//! header's ABI (what `FThetaNetModule::StartupModule` does).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn plugin() -> PathBuf {
    root().join("bindings/unreal/ThetaNet")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The library artifacts of this build (see `tests/c_examples.rs`).
fn artifact_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies the plugin's committed files (no Binaries, no staged headers) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "Binaries" || name == "Intermediate" || name == "include" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn unreal_plugin_descriptor_names_modules_that_exist() {
    let descriptor: serde_json::Value =
        serde_json::from_str(&read(&plugin().join("ThetaNet.uplugin"))).expect("valid JSON");
    assert_eq!(descriptor["FileVersion"], 3);
    let modules = descriptor["Modules"].as_array().expect("a module list");
    let names: Vec<&str> = modules.iter().filter_map(|m| m["Name"].as_str()).collect();
    assert_eq!(names, ["ThetaNet", "ThetaNetXr"]);
    for module in modules {
        let name = module["Name"].as_str().unwrap();
        assert_eq!(module["Type"], "Runtime", "{name}");
        let rules = plugin().join(format!("Source/{name}/{name}.Build.cs"));
        let text = read(&rules);
        assert!(
            text.contains(&format!("public class {name} : ModuleRules")),
            "{name}"
        );
        // Unreal builds without exceptions and RTTI; no module may turn them on.
        assert!(!text.contains("bEnableExceptions = true"), "{name}");
        assert!(!text.contains("bUseRTTI = true"), "{name}");
    }
    // The XR clock module must load before OpenXR creates its instance.
    assert_eq!(modules[1]["LoadingPhase"], "PostConfigInit");
    // The external module is a dependency of the runtime module, not listed itself.
    let library =
        read(&plugin().join("Source/ThirdParty/ThetaNetLibrary/ThetaNetLibrary.Build.cs"));
    assert!(library.contains("Type = ModuleType.External;"));
    assert!(
        read(&plugin().join("Source/ThetaNet/ThetaNet.Build.cs")).contains("\"ThetaNetLibrary\"")
    );
}

/// The platform folders the build rules, the module's loader, the APL file and the build
/// script name must be the same strings.
#[test]
fn unreal_platform_folders_agree_between_build_rules_loader_apl_and_script() {
    let rules = read(&plugin().join("Source/ThirdParty/ThetaNetLibrary/ThetaNetLibrary.Build.cs"));
    let loader = read(&plugin().join("Source/ThetaNet/Private/ThetaNetModule.cpp"));
    let apl = read(&plugin().join("Source/ThirdParty/ThetaNetLibrary/ThetaNetLibrary_APL.xml"));
    let script = read(&root().join("scripts/build-unreal-plugin.sh"));
    for dir in [
        "Linux/x86_64-unknown-linux-gnu",
        "Linux/aarch64-unknown-linux-gnueabi",
    ] {
        assert!(rules.contains(&format!("\"{dir}\"")), "Build.cs: {dir}");
        assert!(
            loader.contains(&format!("TEXT(\"{dir}\")")),
            "loader: {dir}"
        );
        assert!(
            script.contains(&format!("platform_dir={dir}")),
            "script: {dir}"
        );
    }
    for (dir, file) in [("Win64", "theta_net.dll"), ("Mac", "libtheta_net.dylib")] {
        assert!(rules.contains(&format!("\"{dir}\"")), "Build.cs: {dir}");
        assert!(rules.contains(&format!("\"{file}\"")), "Build.cs: {file}");
        assert!(
            loader.contains(&format!("TEXT(\"{dir}\"), TEXT(\"{file}\")")),
            "loader: {dir}/{file}"
        );
        assert!(
            script.contains(&format!("platform_dir={dir}")),
            "script: {dir}"
        );
    }
    assert!(rules.contains("\"Android/arm64-v8a\""));
    assert!(apl.contains("Binaries/ThirdParty/ThetaNetLibrary/Android/arm64-v8a/libtheta_net.so"));
    assert!(script.contains("\"$binaries/Android/arm64-v8a\""));
    assert!(apl.contains("<loadLibrary name=\"theta_net\""));
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn unreal_build_script_stages_a_library_that_loads_and_speaks_the_header_abi() {
    let work = std::env::temp_dir().join(format!("theta-unreal-plugin-{}", std::process::id()));
    std::fs::remove_dir_all(&work).ok();
    let copy = work.join("ThetaNet");
    copy_tree(&plugin(), &copy);

    let output = Command::new("bash")
        .arg(root().join("scripts/build-unreal-plugin.sh"))
        .arg("--stage-only")
        .arg(artifact_dir())
        .arg("--plugin")
        .arg(&copy)
        .output()
        .expect("run the build script");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The headers the external module's include path holds are the repository's.
    let include = copy.join("Source/ThirdParty/ThetaNetLibrary/include");
    assert_eq!(
        read(&include.join("theta.h")),
        read(&root().join("include/theta.h"))
    );
    assert_eq!(
        read(&include.join("theta.hpp")),
        read(&root().join("bindings/cpp/theta.hpp"))
    );

    // The library sits where Build.cs and the loader look, and loads from there.
    let staged = copy
        .join("Binaries/ThirdParty/ThetaNetLibrary/Linux/x86_64-unknown-linux-gnu/libtheta_net.so");
    assert!(staged.exists(), "{}", staged.display());
    let loader = work.join("load_test");
    let built = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{}", include.display()))
        .arg(root().join("bindings/unreal/tests/load_test.c"))
        .args(["-ldl", "-o"])
        .arg(&loader)
        .output()
        .expect("run cc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&loader).arg(&staged).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    std::fs::remove_dir_all(&work).ok();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.starts_with("abi "), "{stdout}");
}

#[test]
fn unreal_build_script_refuses_a_folder_that_is_not_the_plugin() {
    let output = Command::new("bash")
        .arg(root().join("scripts/build-unreal-plugin.sh"))
        .args(["--stage-only", "/tmp", "--plugin"])
        .arg(root().join("include"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not the ThetaNet plugin"));
}
