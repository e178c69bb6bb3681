//! The committed C# interop of the Unity package must be what csbindgen makes of
//! `src/ffi/` (`scripts/gen-csharp.sh`), and, with the few constants written by hand beside
//! it, must cover the whole header: every function, every enum value, every constant.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const GENERATED: &str = "bindings/unity/Runtime/Core/Interop/NativeMethods.g.cs";
const BY_HAND: &str = "bindings/unity/Runtime/Core/Interop/NativeMethods.Missing.cs";

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn committed_csharp_interop_matches_csbindgen_output() {
    let fresh = std::env::temp_dir().join(format!("theta-interop-{}.g.cs", std::process::id()));
    let status = Command::new("bash")
        .arg(root().join("scripts/gen-csharp.sh"))
        .arg(&fresh)
        .status()
        .expect("run scripts/gen-csharp.sh");
    assert!(status.success(), "scripts/gen-csharp.sh failed");
    let generated = std::fs::read_to_string(&fresh).unwrap();
    std::fs::remove_file(&fresh).ok();
    assert!(
        generated == read(GENERATED),
        "{GENERATED} is stale: run scripts/gen-csharp.sh and commit the result"
    );
}

/// The value of a constant's text: a decimal number, `a << b`, or the largest u32/u64.
fn value(text: &str) -> u64 {
    let text = text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    match text {
        "UINT32_MAX" | "uint.MaxValue" => return u64::from(u32::MAX),
        "UINT64_MAX" | "ulong.MaxValue" => return u64::MAX,
        _ => {}
    }
    if let Some((a, b)) = text.split_once("<<") {
        return value(a) << value(b);
    }
    text.parse()
        .unwrap_or_else(|_| panic!("cannot read constant {text:?}"))
}

/// The value of a floating-point constant's text (`100.0` in C, `100f` in C#), if it is
/// one.
fn float(text: &str) -> Option<f32> {
    let text = text.trim();
    let number = text.strip_suffix('f').unwrap_or(text);
    (number.contains('.') || number.len() < text.len())
        .then(|| number.parse().ok())
        .flatten()
}

#[test]
fn every_function_enum_value_and_constant_of_the_header_is_in_csharp() {
    let header = read("include/theta.h");
    let csharp = read(GENERATED) + &read(BY_HAND);

    // Functions: every declaration of the header has its [DllImport].
    let mut functions = 0;
    for line in header.lines() {
        let declaration = !line.starts_with([' ', '/', '#', '}'])
            && line.contains("theta_")
            && line.contains('(');
        if !declaration {
            continue;
        }
        let name = line[line.find("theta_").unwrap()..]
            .split('(')
            .next()
            .unwrap();
        functions += 1;
        assert!(
            csharp.contains(&format!("EntryPoint = \"{name}\"")),
            "{name} has no [DllImport]"
        );
    }
    assert!(functions > 80, "{functions} functions found");

    // Constants: `#define THETA_X value` has `const <type> THETA_X = value;`.
    let mut constants = 0;
    for line in header.lines() {
        let Some(rest) = line.strip_prefix("#define THETA_") else {
            continue;
        };
        let Some((name, text)) = rest.split_once(' ') else {
            continue; // the include guard
        };
        let name = format!("THETA_{name}");
        let declared = csharp
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.starts_with("internal const ")
                    .then(|| l.split_once(&format!(" {name} = ")))
                    .flatten()
                    .map(|(_, v)| v.trim_end_matches(';').to_owned())
            })
            .unwrap_or_else(|| panic!("{name} is not defined in C#"));
        match float(text) {
            Some(f) => assert_eq!(float(&declared), Some(f), "{name}"),
            None => assert_eq!(value(&declared), value(text), "{name}"),
        }
        constants += 1;
    }
    assert!(constants >= 8, "{constants} constants found");

    // Enums: each `THETA_<ENUM>_<VARIANT> = n` of enum ThetaX is `Variant = n` in C#'s ThetaX.
    let mut enums: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut variants: Vec<(String, u64)> = Vec::new();
    for line in header.lines() {
        if let Some(name) = line.strip_prefix("enum ") {
            current = Some(name.trim().to_owned());
            variants.clear();
        } else if line.starts_with("typedef enum {") {
            current = Some(String::new());
            variants.clear();
        } else if let Some(name) = current.clone() {
            let trimmed = line.trim();
            if let Some((variant, n)) = trimmed.trim_end_matches(',').split_once(" = ") {
                variants.push((variant.to_owned(), value(n)));
            } else if trimmed.starts_with('}') {
                let name = if name.is_empty() {
                    trimmed
                        .trim_start_matches('}')
                        .trim()
                        .trim_end_matches(';')
                        .to_owned()
                } else {
                    name
                };
                enums.insert(name, variants.clone());
                current = None;
            }
        }
    }
    assert!(enums.len() >= 10, "{} enums found", enums.len());
    for (name, variants) in &enums {
        let start = csharp
            .find(&format!("internal enum {name} :"))
            .unwrap_or_else(|| panic!("enum {name} is not in C#"));
        let body = &csharp[start..start + csharp[start..].find('}').unwrap()];
        for (variant, n) in variants {
            // THETA_STATUS_INVALID_HANDLE -> InvalidHandle
            let prefix = screaming(name);
            let rest = variant
                .strip_prefix(&format!("{prefix}_"))
                .unwrap_or_else(|| panic!("{variant} does not start with {prefix}_"));
            let pascal: String = rest
                .split('_')
                .map(|w| w[..1].to_owned() + &w[1..].to_lowercase())
                .collect();
            assert!(
                body.contains(&format!("{pascal} = {n},")),
                "{name}.{pascal} = {n} is not in C#"
            );
        }
    }
}

/// `ThetaSessionEventKind` -> `THETA_SESSION_EVENT_KIND`.
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
