//! `theta serve`: the room server's command line over [`theta_net::server::serve`]: the
//! config file and its overrides, logging, the stop signal, and what it prints at start.

use std::io::Write;
use std::path::Path;

use theta_net::server::keys::SECRET_FILE;
use theta_net::server::{self, ServerConfig};

use crate::cli::ServeArgs;
use crate::interrupt;

/// Prints a line to stdout, ignoring a closed stdout: a server must not stop because
/// nobody reads what it prints (its log goes to stderr).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `theta serve`.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ServerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    if let Some(metrics) = args.metrics {
        config.metrics = metrics.0;
    }
    server::init_logging(&args.log_level)?;
    interrupt::install();
    let report = server::serve::run(&config, args.rate, interrupt::flag(), |ready| {
        say!(
            "theta serve: listening on {} (QUIC, ALPN theta/1), {} Hz, rooms saved in {}",
            ready.addr,
            args.rate,
            ready.state_dir.display()
        );
        say!("fingerprint {}", ready.fingerprint);
        let secret = Path::new(&ready.state_dir).join(SECRET_FILE);
        say!(
            "secret      in {}{}",
            secret.display(),
            if ready.keys_created {
                " (made now)"
            } else {
                ""
            }
        );
        match ready.metrics {
            Some(at) => say!("metrics     http://{at}/metrics  health http://{at}/healthz"),
            None => say!("metrics     off"),
        }
        say!(
            "join a room: theta join {} --fingerprint {} --token $(theta token --secret $(cat {}) --room ROOM --peer N)",
            ready.addr,
            ready.fingerprint,
            secret.display()
        );
    })?;
    say!(
        "theta serve: stopped; {} rooms opened, {} saved at exit{}{}",
        report.rooms_opened,
        report.rooms_saved_at_exit,
        if report.drained_clean {
            ""
        } else {
            ", clients still connected at the drain bound"
        },
        if report.save_failures > 0 {
            format!(", {} saves failed (see the log)", report.save_failures)
        } else {
            String::new()
        }
    );
    if report.save_failures > 0 {
        return Err(format!("{} saves failed", report.save_failures));
    }
    Ok(())
}
