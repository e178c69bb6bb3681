//! `theta`: the command-line tool. `theta demo` replicates a generated scene and prints
//! what it cost; `theta bench` measures the replication core against the seed's design.

mod bench;
mod bench_scene;
mod demo;

use std::process::ExitCode;

const USAGE: &str = "\
usage: theta <command> [options]

commands:
  demo    replicate a generated scene from a host world into a replica, print sizes and
          whether the replica converged
  bench   measure snapshot, delta and apply against the seed's JSON full-rescan design

run `theta <command> --help` for the options of a command";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("demo") => demo::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("theta: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `--name value` options: `spec` lists the accepted names; returns (name, value)
/// pairs in order, or a message naming the bad option.
fn parse_options<'a>(
    args: &'a [String],
    spec: &[&str],
    usage: &str,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "-h" || arg == "--help" {
            return Err(usage.to_owned());
        }
        let Some(name) = arg.strip_prefix("--").filter(|n| spec.contains(n)) else {
            return Err(format!("unknown option {arg:?}\n\n{usage}"));
        };
        let Some(value) = iter.next() else {
            return Err(format!("option --{name} needs a value\n\n{usage}"));
        };
        out.push((name, value.as_str()));
    }
    Ok(out)
}

/// Parses one option value, naming the option in the error.
fn parse_value<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("--{name} {value:?}: {e}"))
}
