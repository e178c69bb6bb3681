//! `theta`: the command-line tool. `theta demo` runs a host and clients over loopback QUIC
//! and prints what crossed the wire (`--in-process`: the replication core alone);
//! `theta host`, `theta join` and `theta token` run a session across processes or machines;
//! `theta bench` measures the replication core against the seed's design.

mod avatars;
mod bench;
mod bench_scene;
mod demo;
mod host_join;
mod interrupt;
mod net_demo;
mod netutil;
mod scene;

use std::process::ExitCode;

const USAGE: &str = "\
usage: theta <command> [options]

commands:
  demo    a host and N clients over loopback QUIC replicating a scene of moving objects:
          live progress, then convergence and per-client bytes/s on the wire against the
          seed's JSON design (`demo --in-process`: the replication core alone, no network)
  host    host the demo scene on an address; prints the certificate fingerprint, the join
          secret and a ready `theta join` command line
  join    join a host: `theta join ADDR --fingerprint HEX --token TOKEN`
  token   mint a join token from a host's secret: `theta token --secret HEX --peer N`
  bench   measure snapshot, delta and apply against the seed's JSON full-rescan design

run `theta <command> --help` for the options of a command";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("demo") => {
            if rest.iter().any(|a| a == "--in-process") {
                let rest: Vec<String> = rest.into_iter().filter(|a| a != "--in-process").collect();
                demo::run(&rest)
            } else {
                net_demo::run(&rest)
            }
        }
        Some("host") => host_join::host(&rest),
        Some("join") => host_join::join(&rest),
        Some("token") => host_join::token(&rest),
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
