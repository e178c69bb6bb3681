//! `theta`: the command-line tool. `theta demo` runs a host and clients over loopback QUIC
//! and prints what crossed the wire (`--in-process`: the replication core alone);
//! `theta host`, `theta join` and `theta token` run a session across processes or machines;
//! `theta serve` runs a dedicated room server;
//! `theta bench` measures the replication core against the seed's design,
//! `theta bench interest` interest management against none, `theta bench clients` the
//! host's CPU per client with the host and the clients in processes of their own, and
//! `theta bench rooms` the room server's CPU and memory with many rooms.
//!
//! Exit status: 0 on success (and for `--help`, `--version`), 2 for a bad command line
//! (clap names the option), 1 when a command fails (e.g. a client did not converge).

mod avatars;
mod bench;
mod bench_clients;
mod bench_interest;
mod bench_rooms;
mod bench_scene;
mod children;
mod cli;
mod control;
mod demo;
mod demo_report;
mod grabs;
mod host_join;
mod interrupt;
mod join;
mod json_replay;
mod net_demo;
mod netutil;
mod scene;
mod serve;
mod viewers;

use std::process::ExitCode;

use clap::Parser;

use cli::{BenchCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) if args.in_process => demo::run(args),
        Command::Demo(args) => net_demo::run(args),
        Command::Host(args) => host_join::host(args),
        Command::Join(args) => join::join(args),
        Command::Token(args) => host_join::token(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => match &args.what {
            Some(BenchCommand::Interest(interest)) => bench_interest::run(interest),
            Some(BenchCommand::Clients(clients)) => bench_clients::run(clients),
            Some(BenchCommand::Rooms(rooms)) => bench_rooms::run(rooms),
            None => bench::run(args),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("theta: {message}");
            ExitCode::FAILURE
        }
    }
}
