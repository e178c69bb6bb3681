//! The command line of `theta`, declared with clap's derive: every command, its options,
//! their defaults and their checks. A value out of range is refused while parsing, so
//! clap reports it like any other bad option (the option named, usage, exit status 2),
//! and `--help` prints to stdout with exit status 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use theta_net::net::faults::MAX_FAULT_DELAY;
use theta_net::net::tls::Fingerprint;
use theta_net::net::token::{JoinSecret, JoinToken};
use theta_net::server::RoomId;
use theta_net::{PeerId, DEFAULT_MAX_CHUNK_BYTES};

use crate::netutil;
use crate::scene::Motion;

/// `theta`: replicate a scene between a host and clients over QUIC, and measure it.
#[derive(Parser)]
#[command(name = "theta", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// A host and N clients over loopback QUIC replicating a scene of moving objects: live
    /// progress, then convergence, bytes/s on the wire against the seed's JSON design, and
    /// the quiet after convergence (`--in-process`: the replication core alone, no network)
    #[command(long_about = DEMO_LONG)]
    Demo(DemoArgs),
    /// Host the demo scene on an address; prints the certificate fingerprint, the join
    /// secret and a ready `theta join` command line
    #[command(long_about = HOST_LONG)]
    Host(HostArgs),
    /// Join a host: `theta join ADDR --fingerprint HEX --token TOKEN`
    #[command(long_about = JOIN_LONG)]
    Join(JoinArgs),
    /// Mint a join token from a host's secret: `theta token --secret HEX --peer N`
    /// (`--room R` for a room of `theta serve`)
    #[command(long_about = TOKEN_LONG)]
    Token(TokenArgs),
    /// Run a dedicated room server: many rooms on one UDP port, their state kept across
    /// restarts, health and Prometheus metrics over HTTP
    #[command(long_about = SERVE_LONG)]
    Serve(ServeArgs),
    /// Measure snapshot, delta and apply against the seed's JSON full-rescan design;
    /// `theta bench interest`: interest management against none
    #[command(long_about = BENCH_LONG)]
    Bench(BenchArgs),
}

/// The long help of `theta demo`.
const DEMO_LONG: &str = "\
A host and N clients in this process over loopback QUIC (127.0.0.1), the host's \
world holding a scene of moving, recoloring, arriving and leaving objects. With --in-process, \
the replication core alone: the same scene replicated through encoded snapshot chunks and delta \
frames in this process, no network (options --entities --ticks --move-percent --chunk-bytes \
--seed).";

/// The long help of `theta host`.
const HOST_LONG: &str = "\
Hosts the demo scene on ADDR (e.g. 0.0.0.0:4433, or 127.0.0.1:0 for any free \
port) with a fresh self-signed certificate; prints its fingerprint, the join secret and a ready \
`theta join` command line with a token for peer 1, then ticks the scene until Ctrl-C (or \
--ticks), printing a stats line every second.";

/// The long help of `theta join`.
const JOIN_LONG: &str = "\
Joins the host at ADDR (host:port), trusting only the certificate with this \
SHA-256 fingerprint, and replicates its scene until Ctrl-C, --ticks, or the host shuts down; \
prints a stats line every second and the final state hash.";

/// The long help of `theta token`.
const TOKEN_LONG: &str = "\
Prints a join token for peer N, signed with the host's secret (64 hex digits, \
as `theta host` prints it). Each token admits one join. With --room, a token for that room \
of a room server (`theta serve`), signed with the server's secret (its state directory's \
join-secret.hex); a room server refuses tokens without a room, a hosted session tokens with \
one.";

/// The long help of `theta serve`.
const SERVE_LONG: &str = "\
Serves rooms on one UDP port until SIGTERM or Ctrl-C. A client joins a room with a token \
naming it (`theta token --room`); the room opens at its first join, from its saved state or \
empty with that client's component types, keeps every entity when clients leave, is saved \
every save_interval_secs and when it closes, and is restored at the next start. SIGTERM \
drains: joins are refused, clients are told, every room is saved, and the server exits \
within drain_timeout_secs. The settings come from a TOML file (--config; see docs/serve.md), \
which the options below override. The certificate and join secret are made at the first \
start and kept in the state directory, so clients keep the same fingerprint and tokens.";

/// The long help of `theta bench`.
const BENCH_LONG: &str = "\
Measures snapshot build+encode (10 to 10 000 entities), delta diff+encode and \
delta apply (10 000 entities, 1 to 100 % changed) and tracking memory, ours beside the seed's \
JSON full-rescan design in the same run, then checks the targets of issue 2. Build with \
--release. The exit status does not depend on the targets (timings vary by machine).\n\n\
`theta bench interest` measures interest management (issue 17) instead: see \
`theta bench interest --help`; `theta bench clients` a host's CPU per client (issue 18) and \
`theta bench rooms` the room server's CPU and memory with many rooms (issue 19).";

/// The long help of `theta bench interest`.
const BENCH_INTEREST_LONG: &str = "\
Measures interest management (issue 17): a host and N clients of the protocol core in \
this process (no sockets; every message delivered at once, in order; a virtual clock of 60 \
ticks per second), on a scene of objects spread uniformly in a cube whose side makes one \
client's sphere hold about 10 % of them. A share of the objects moves each tick; each \
client has one sphere of --radius (outer radius 1.1x) at its own spot, walking at --walk. \
The same scene and seed run twice in this process: with interest management \
(cells of --radius) and without. After the joins and the snapshots have settled, it \
measures the host's CPU per tick (wall time of handling the clients' messages plus \
Host::tick, median and mean; the clients' work is not counted), the bytes the host sends \
each client per second (datagrams and stream messages) and the share of the world each \
client sees, then prints the ratios against the goals of issue 17: bytes per client within \
1.5x of its share of the no-interest bytes, and host CPU per tick below the no-interest \
case. Build with --release. The exit status does not depend on the goals (timings vary by \
machine); it is 1 when a client does not hold exactly what the host says it sees.";

/// The long help of `theta bench clients`.
const BENCH_CLIENTS_LONG: &str = "\
Measures the host's CPU per client (issue 18, item 7). For each N of --clients, it \
starts `theta host` as a child process on 127.0.0.1 (this same binary) with the demo scene \
(--entities objects, --move-percent of them moving --object-rate times a second), then N \
clients as `theta join` children, spread over --processes processes (several clients per \
process). With avatars, every client pushes a 3-point avatar (head and both hands) \
--avatar-rate times a second, which the host relays to every other client; the host and the \
clients then tick at --avatar-rate while the objects still move at --object-rate. After \
every client joined and --warmup seconds, it measures over --seconds: the host process's CPU \
time (utime + stime from /proc/PID/stat, every thread of it, the network runtime's \
included), the host's ticks and its median tick time, and the bytes it sent. Then the host \
stops changing the scene and every client must end with the host's final state hash.\n\n\
Per N it prints the host's CPU in cores, cores per client, clients per host core (the \
target of issue 18: at least 100 at 60 Hz objects + 90 Hz avatars), the host's bytes sent \
per client per second and its median tick time; then the ratios of the same run: cost per \
client at each N against the smallest N (linearity) and the avatars' share (with against \
without). Linux only (/proc). Build with --release.";

/// What `theta bench clients --help` says after the options.
const BENCH_CLIENTS_AFTER: &str = "\
Exits 1 when a client fails: it could not join, disconnected, stopped receiving state or \
the other clients' avatars, or did not end with the host's state. Every child process is \
killed on failure and on Ctrl-C. The clients share the machine with the host, so the host's \
CPU figure is its own while the clients' load is printed beside it.";

/// The long help of `theta bench rooms`.
const BENCH_ROOMS_LONG: &str = "\
Measures the room server (issue 19, item 5). It starts `theta serve` as a child process on \
127.0.0.1 (this same binary) with a fresh state directory, its metrics endpoint on and its \
limits set to --rooms rooms of --clients-per-room peers, then the clients as `theta join` \
children, whole rooms spread over --processes processes. Each room's first client spawns \
--objects objects of the demo scene and moves --move-percent of them --object-rate times a \
second (`theta join --own-objects`); with avatars, every client also pushes a 3-point avatar \
(head and both hands) --avatar-rate times a second, which the server relays to the others \
of its room. Once every client joined and holds its room's objects, and after --warmup \
seconds, it measures over --seconds: the server process's CPU time (utime + stime from \
/proc/PID/stat, every thread of it), its ticks and their mean time from its metrics \
endpoint (theta_tick_seconds_count and _sum, before and after the window), and its resident \
memory (VmRSS from /proc/PID/status) against the same right after its start.\n\n\
It prints the rooms and clients the server held, whether it kept its --server-rate, its CPU \
per client in cores, clients per server core and resident memory per room. Before that, a \
baseline in the same run: one room of the same clients and objects on a fresh server, so \
that the cost per client and the memory per room of R rooms are also shown as ratios \
against one room. Linux only (/proc). Build with --release.";

/// What `theta bench rooms --help` says after the options.
const BENCH_ROOMS_AFTER: &str = "\
Exits 1 when a client fails: its join was refused, it disconnected, it did not receive its \
room's objects, or it stopped receiving state or the avatars of the others in its room; \
also when the server did not hold every room and client. Every child process is killed and \
the state directory removed on success, on failure and on Ctrl-C. The clients share the \
machine with the server, so the server's CPU figure is its own while the clients' load is \
printed beside it.";

/// What `theta demo --help` says after the options.
const DEMO_AFTER: &str = "\
Faults: --delay and --jitter are the path's: each datagram waits delay ± jitter \
(uniform, at least 0), which reorders datagrams as Wi-Fi does; they stay on from the join to the \
end. --loss, --duplicate, --reorder and --corrupt hit the datagrams while the ticks change the \
scene and stop with the last change.\n\nExits non-zero when a client did not converge, was \
disconnected or never rendered the host's avatar.";

/// Help heading of the options that only the demo over QUIC has.
const NETWORK: &str = "Over QUIC (not with --in-process)";
/// Help heading of the fault options.
const FAULTS: &str = "Faults on every endpoint's outgoing UDP datagrams (not with --in-process)";

/// `theta demo`.
#[derive(Args, Clone, Debug)]
#[command(after_help = DEMO_AFTER)]
pub struct DemoArgs {
    /// The replication core alone, in this process: snapshot chunks and delta frames, no
    /// network
    #[arg(long)]
    pub in_process: bool,
    /// Objects in the scene at the start
    #[arg(long, value_name = "M", default_value_t = 1000, value_parser = at_least_one)]
    pub entities: usize,
    /// Engine ticks with changes [default: 600; 120 with --in-process]
    #[arg(long, value_name = "T", value_parser = positive)]
    pub ticks: Option<u64>,
    /// Percent of objects that move each tick
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = percent)]
    pub move_percent: f64,
    /// Scene, fault and delivery-order seed
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Snapshot chunk bound in bytes [default: 16384] (only with --in-process)
    #[arg(long, value_name = "B", requires = "in_process", value_parser = at_least_one)]
    pub chunk_bytes: Option<usize>,
    /// Clients joining the host
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clients,
          conflicts_with = "in_process", help_heading = NETWORK)]
    pub clients: usize,
    /// Engine ticks per second; the demo warns when it cannot keep this rate
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate,
          conflicts_with = "in_process", help_heading = NETWORK)]
    pub rate: f64,
    /// How the moving objects move
    #[arg(long, value_name = "M", value_enum, default_value_t = Motion::Smooth,
          conflicts_with = "in_process", help_heading = NETWORK)]
    pub motion: Motion,
    /// Declare the transform's fields (position to 1 mm, rotation to 0.1°): quantised,
    /// and sent as small numbers against what each client acknowledged; `off` sends it
    /// as a raw 28-byte blob
    #[arg(long, value_name = "ON|OFF", default_value = "on", value_parser = on_off,
          action = clap::ArgAction::Set, conflicts_with = "in_process", help_heading = NETWORK)]
    pub fields: bool,
    /// Base delay of every datagram, in ms (the path's; stays on while the sessions
    /// converge)
    #[arg(long, value_name = "MS", default_value = "0", value_parser = millis,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub delay: Duration,
    /// Each datagram's delay is uniform in delay ± jitter, in ms (the path's; reorders by
    /// delay variation)
    #[arg(long, value_name = "MS", default_value = "0", value_parser = millis,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub jitter: Duration,
    /// Share of datagrams dropped while the ticks run, e.g. 0.1; implies --duplicate 0.05
    /// and --reorder 0.1 unless those are given
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = share_below_one,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub loss: f64,
    /// Share of datagrams sent twice while the ticks run [default: 0.05 with --loss, else 0]
    #[arg(long, value_name = "P", value_parser = share,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub duplicate: Option<f64>,
    /// Share of datagrams held back behind the next 1 to 3 while the ticks run [default: 0.1
    /// with --loss, else 0]
    #[arg(long, value_name = "P", value_parser = share,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub reorder: Option<f64>,
    /// Share of datagrams with 1 to 3 bits flipped while the ticks run (QUIC refuses them:
    /// a loss that costs a decryption)
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = share_below_one,
          conflicts_with = "in_process", help_heading = FAULTS)]
    pub corrupt: f64,
    /// Also spawn N shared objects the clients grab, move and pass between them
    /// (ownership requests, leases, releases); the summary counts ownership changes,
    /// refusals and writes of a previous owner applied after its transfer (always 0)
    #[arg(long, value_name = "N", value_parser = at_least_one,
          conflicts_with = "in_process", help_heading = NETWORK)]
    pub grab: Option<usize>,
    /// Interest management: each client sees only the objects within RADIUS metres of
    /// its head (which walks round the room), and the host sends it only those; the
    /// summary gives the share each sees, the bytes per client and the host's time per
    /// tick (compare with the same demo without --interest)
    #[arg(long, value_name = "RADIUS", value_parser = radius,
          conflicts_with = "in_process", help_heading = NETWORK)]
    pub interest: Option<f32>,
}

impl DemoArgs {
    /// Ticks of changes, with the mode's default.
    pub fn ticks(&self) -> u64 {
        self.ticks
            .unwrap_or(if self.in_process { 120 } else { 600 })
    }

    /// The snapshot chunk bound of the in-process demo.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes.unwrap_or(DEFAULT_MAX_CHUNK_BYTES)
    }

    /// Share of duplicated datagrams, with its default implied by `--loss`.
    pub fn duplicate(&self) -> f64 {
        self.duplicate
            .unwrap_or(if self.loss > 0.0 { 0.05 } else { 0.0 })
    }

    /// Share of reordered datagrams, with its default implied by `--loss`.
    pub fn reorder(&self) -> f64 {
        self.reorder
            .unwrap_or(if self.loss > 0.0 { 0.1 } else { 0.0 })
    }
}

/// `theta host`.
#[derive(Args, Clone)]
pub struct HostArgs {
    /// Address and UDP port to listen on
    #[arg(long, value_name = "ADDR", value_parser = address)]
    pub bind: SocketAddr,
    /// Join secret (64 hex digits); a random one when not given
    #[arg(long, value_name = "HEX", value_parser = secret)]
    pub secret: Option<JoinSecret>,
    /// Objects in the scene
    #[arg(long, value_name = "M", default_value_t = 1000, value_parser = at_least_one)]
    pub entities: usize,
    /// Engine ticks per second; the stats line warns when the host cannot keep it
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub rate: f64,
    /// Stop changing the scene after T ticks, linger, then shut down [default: run until
    /// Ctrl-C]
    #[arg(long, value_name = "T")]
    pub ticks: Option<u64>,
    /// Percent of objects that move each tick
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = percent)]
    pub move_percent: f64,
    /// Scene seed
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// With --ticks: keep serving, without changes, this long after the last tick, so that
    /// clients on slow paths (50 ms and more) catch up and hear the close
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = linger)]
    pub linger: f64,
    /// Validity of the printed token, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = ttl)]
    pub ttl: u64,
    /// How long a connection may take from its first packet to its join request (QUIC
    /// and TLS handshake included) before the host closes it; raise it for very slow
    /// clients (a client under valgrind, a congested link)
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = admission)]
    pub admission_timeout: f64,
    /// Scene steps per second, at most --rate [default: --rate]: below it the scene steps
    /// on some ticks only, e.g. --rate 90 --scene-rate 60 moves the objects at 60 Hz while
    /// the session ticks (and relays poses) at 90 Hz
    #[arg(long, value_name = "HZ", value_parser = rate)]
    pub scene_rate: Option<f64>,
    /// Take commands on standard input, one per line, for a controlling process: `mark`
    /// prints a `mark` line with the ticks, the bytes sent and the median tick time since
    /// the previous mark; the end of the input stops the changes as --ticks does (linger,
    /// then shut down)
    #[arg(long)]
    pub control_stdin: bool,
}

/// `theta join`.
#[derive(Args, Clone)]
pub struct JoinArgs {
    /// The host's address, host:port
    #[arg(value_name = "ADDR", value_parser = address)]
    pub addr: SocketAddr,
    /// The host certificate's SHA-256 (64 hex digits, `:` pairs accepted)
    #[arg(long, value_name = "HEX", value_parser = fingerprint)]
    pub fingerprint: Fingerprint,
    /// A join token from `theta host` or `theta token`; repeat it to run several clients
    /// in this process (one per token, each line of output then names its peer)
    #[arg(long = "token", value_name = "TOKEN", value_parser = token, required = true)]
    pub tokens: Vec<String>,
    /// Leave after T ticks once joined [default: until Ctrl-C or the host shuts down]
    #[arg(long, value_name = "T")]
    pub ticks: Option<u64>,
    /// Ticks per second; the stats line warns when the client cannot keep it
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub rate: f64,
    /// Push a synthetic 3-point avatar (head and both hands) every tick, as an XR engine
    /// does each frame; the stats line counts the remote devices this client receives
    #[arg(long)]
    pub avatar: bool,
    /// The first client of each room in this process (the first client, with a hosted
    /// session's tokens) spawns M objects of the demo scene's types once joined, owns
    /// them and moves --move-percent of them each object step
    #[arg(long, value_name = "M", value_parser = objects)]
    pub own_objects: Option<usize>,
    /// Percent of the owned objects that move each object step (the same ones, smoothly)
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = percent,
          requires = "own_objects")]
    pub move_percent: f64,
    /// Object steps per second, at most one per tick (with --rate 90, the objects still
    /// move 60 times a second)
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate,
          requires = "own_objects")]
    pub object_rate: f64,
}

/// `theta token`.
#[derive(Args, Clone)]
pub struct TokenArgs {
    /// The host's join secret
    #[arg(long, value_name = "HEX", value_parser = secret)]
    pub secret: JoinSecret,
    /// The peer id the token admits, 1..=65535 (the host is peer 0)
    #[arg(long, value_name = "N", value_parser = peer)]
    pub peer: PeerId,
    /// How long the token stays valid, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = ttl)]
    pub ttl: u64,
    /// The room of a room server the token admits to (1 to 64 of A-Z a-z 0-9 _ -)
    #[arg(long, value_name = "ROOM", value_parser = room)]
    pub room: Option<RoomId>,
}

/// `theta serve`.
#[derive(Args, Clone)]
pub struct ServeArgs {
    /// The TOML config file [default: every setting at its default]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The UDP address to serve on, overriding the config's `listen`
    #[arg(long, value_name = "ADDR", value_parser = address)]
    pub listen: Option<SocketAddr>,
    /// The state directory, overriding the config's `state_dir`
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The metrics endpoint's address, or `off`, overriding the config's `metrics`
    #[arg(long, value_name = "ADDR|off", value_parser = address_or_off)]
    pub metrics: Option<MetricsAt>,
    /// Ticks per second of every room
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub rate: f64,
    /// Log level: off, error, warn, info, debug, trace, or tracing filter directives
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Where `--metrics` puts the endpoint.
#[derive(Clone, Copy, Debug)]
pub struct MetricsAt(pub Option<SocketAddr>);

/// `theta bench`.
#[derive(Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another measurement instead of the default figures
    #[command(subcommand)]
    pub what: Option<BenchCommand>,
    /// Least wall time of one measuring batch, in ms
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub millis: u64,
    /// Batches per figure; the median is reported
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    pub batches: usize,
}

/// What `theta bench` measures instead of its default figures.
#[derive(Subcommand, Clone, Debug)]
pub enum BenchCommand {
    /// Interest management (issue 17): host CPU per tick and bytes per client, with
    /// interest against without, same scene and seed
    #[command(long_about = BENCH_INTEREST_LONG)]
    Interest(InterestArgs),
    /// Host CPU per client (issue 18): a `theta host` process measured alone while N
    /// clients in other processes replicate its scene, with 3-point avatars and without
    #[command(long_about = BENCH_CLIENTS_LONG, after_help = BENCH_CLIENTS_AFTER)]
    Clients(ClientsArgs),
    /// The room server's figures (issue 19): a `theta serve` process measured alone while
    /// R rooms of C clients each, in other processes, replicate M moving objects per room
    #[command(long_about = BENCH_ROOMS_LONG, after_help = BENCH_ROOMS_AFTER)]
    Rooms(RoomsArgs),
}

/// Whether the clients push avatars in `theta bench clients`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AvatarCases {
    /// Each N twice: with avatars, then without (the avatars' share)
    Both,
    /// With avatars only
    On,
    /// Without avatars only
    Off,
}

impl AvatarCases {
    /// The cases to run, avatars on first.
    pub fn cases(self) -> &'static [bool] {
        match self {
            AvatarCases::Both => &[true, false],
            AvatarCases::On => &[true],
            AvatarCases::Off => &[false],
        }
    }
}

/// `theta bench clients`.
#[derive(Args, Clone, Debug)]
pub struct ClientsArgs {
    /// Numbers of clients to measure, comma-separated (each a run of its own)
    #[arg(long, value_name = "N,N,..", value_delimiter = ',', default_value = "8,16,32",
          value_parser = clients)]
    pub clients: Vec<usize>,
    /// Seconds of the measuring window, after the warm-up
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = window)]
    pub seconds: f64,
    /// Seconds between the last client's join and the window (snapshots, dictionary
    /// training, the clock estimates of the pose streams)
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = warmup)]
    pub warmup: f64,
    /// Client processes per run (at most N): the clients are spread over them
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = processes)]
    pub processes: usize,
    /// Objects in the host's scene
    #[arg(long, value_name = "M", default_value_t = 1000, value_parser = at_least_one)]
    pub entities: usize,
    /// Percent of objects that move each scene step
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = percent)]
    pub move_percent: f64,
    /// Scene steps (object updates) per second
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub object_rate: f64,
    /// Avatar pushes per second of every client; the host and the clients tick at this
    /// rate when avatars are on (it is at least --object-rate)
    #[arg(long, value_name = "HZ", default_value_t = 90.0, value_parser = rate)]
    pub avatar_rate: f64,
    /// With avatars, without, or both (the avatars' share in the same run)
    #[arg(long, value_name = "CASES", value_enum, default_value_t = AvatarCases::Both)]
    pub avatars: AvatarCases,
}

/// `theta bench rooms`.
#[derive(Args, Clone, Debug)]
pub struct RoomsArgs {
    /// Rooms open at once on the server
    #[arg(long, value_name = "R", default_value_t = 50, value_parser = rooms)]
    pub rooms: usize,
    /// Clients in each room; the first of each room spawns and moves its objects
    #[arg(long, value_name = "C", default_value_t = 4, value_parser = clients)]
    pub clients_per_room: usize,
    /// Objects in each room
    #[arg(long, value_name = "M", default_value_t = 200, value_parser = objects)]
    pub objects: usize,
    /// Percent of each room's objects that move each object step
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = percent)]
    pub move_percent: f64,
    /// Object steps per second
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub object_rate: f64,
    /// Avatar pushes per second of every client; the clients tick at this rate when
    /// avatars are on (at least --object-rate)
    #[arg(long, value_name = "HZ", default_value_t = 90.0, value_parser = rate)]
    pub avatar_rate: f64,
    /// The server's ticks per second (every room's)
    #[arg(long, value_name = "HZ", default_value_t = 60.0, value_parser = rate)]
    pub server_rate: f64,
    /// With avatars, without, or both
    #[arg(long, value_name = "CASES", value_enum, default_value_t = AvatarCases::On)]
    pub avatars: AvatarCases,
    /// Seconds of the measuring window, after the warm-up
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = window)]
    pub seconds: f64,
    /// Seconds between the moment every client holds its room's objects and the window
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = warmup)]
    pub warmup: f64,
    /// Client processes (at most R): whole rooms are spread over them
    #[arg(long, value_name = "P", default_value_t = 4, value_parser = processes)]
    pub processes: usize,
}

/// `theta bench interest`.
#[derive(Args, Clone, Debug)]
pub struct InterestArgs {
    /// Clients joining the host
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clients)]
    pub clients: usize,
    /// Objects in the scene
    #[arg(long, value_name = "M", default_value_t = 10_000, value_parser = objects)]
    pub objects: usize,
    /// Percent of the objects that move each tick (a small step, inside the cube)
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = percent)]
    pub moving_percent: f64,
    /// Virtual seconds measured in each case, after the warm-up
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = seconds)]
    pub seconds: f64,
    /// Radius of each client's sphere, in metres (also the cell size of the interest grid;
    /// the cube's side follows from it)
    #[arg(long, value_name = "R", default_value_t = 20.0, value_parser = radius)]
    pub radius: f32,
    /// Walking speed of the clients' spheres, in metres per second (0: they stand still
    /// and their interest is set once)
    #[arg(long, value_name = "M/S", default_value_t = 1.0, value_parser = walk)]
    pub walk: f32,
    /// Scene seed (both cases use it)
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
}

// Value checks. clap prefixes each message with the option and the value it refused.

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| e.to_string())
}

/// A number within `lo..=hi` (NaN and infinities are not), `shown` naming the range in the
/// refusal.
fn within<T>(s: &str, lo: T, hi: T, shown: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let v: T = number(s)?;
    if lo <= v && v <= hi {
        Ok(v)
    } else {
        Err(format!("{v} is not within {shown}"))
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match number(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn objects(s: &str) -> Result<usize, String> {
    within(s, 1, 1_000_000, "1..=1000000")
}

/// Seconds of a measuring window of `theta bench clients`.
fn window(s: &str) -> Result<f64, String> {
    within(s, 0.5, 3600.0, "0.5..=3600 (seconds)")
}

/// Seconds of warm-up of `theta bench clients`.
fn warmup(s: &str) -> Result<f64, String> {
    within(s, 0.0, 600.0, "0..=600 (seconds)")
}

/// Rooms of `theta bench rooms`.
fn rooms(s: &str) -> Result<usize, String> {
    within(s, 1, 1000, "1..=1000")
}

/// Client processes of `theta bench clients`.
fn processes(s: &str) -> Result<usize, String> {
    within(s, 1, 64, "1..=64")
}

/// Virtual seconds of measurement: at least one tick.
fn seconds(s: &str) -> Result<f64, String> {
    within(s, 0.02, 3600.0, "0.02..=3600 (seconds)")
}

/// A switch: `on` or `off`.
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?} is neither on nor off")),
    }
}

/// An interest radius in metres.
fn radius(s: &str) -> Result<f32, String> {
    within(s, 0.01, 1.0e6, "0.01..=1000000 (metres)")
}

/// A walking speed in metres per second.
fn walk(s: &str) -> Result<f32, String> {
    within(s, 0.0, 1000.0, "0..=1000 (metres per second)")
}

fn positive(s: &str) -> Result<u64, String> {
    match number(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn clients(s: &str) -> Result<usize, String> {
    within(s, 1, 64, "1..=64")
}

/// A tick rate in ticks per second.
pub fn rate(s: &str) -> Result<f64, String> {
    within(s, 0.1, 10_000.0, "0.1..=10000 (ticks per second)")
}

fn percent(s: &str) -> Result<f64, String> {
    within(s, 0.0, 100.0, "0..=100")
}

/// A share of datagrams that leaves some through (loss, corruption).
fn share_below_one(s: &str) -> Result<f64, String> {
    let p: f64 = number(s)?;
    if (0.0..1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{p} is not within 0..1 (a share of datagrams, e.g. 0.1)"
        ))
    }
}

/// A share of datagrams, all of them allowed (duplication, reordering).
fn share(s: &str) -> Result<f64, String> {
    within(s, 0.0, 1.0, "0..=1 (a share of datagrams, e.g. 0.1)")
}

/// Milliseconds, up to what the fault sockets accept.
fn millis(s: &str) -> Result<Duration, String> {
    let ms: f64 = number(s)?;
    let max = MAX_FAULT_DELAY.as_secs_f64() * 1e3;
    if (0.0..=max).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!("{ms} is not within 0..={max} (milliseconds)"))
    }
}

fn linger(s: &str) -> Result<f64, String> {
    within(s, 0.0, 3600.0, "0..=3600")
}

fn admission(s: &str) -> Result<f64, String> {
    within(s, 0.1, 3600.0, "0.1..=3600 (seconds)")
}

fn ttl(s: &str) -> Result<u64, String> {
    match number(s)? {
        0 => Err("must be at least 1 second".into()),
        n => Ok(n),
    }
}

fn peer(s: &str) -> Result<PeerId, String> {
    let n: u32 = number(s)?;
    PeerId::try_from(n)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{n} is not within 1..=65535 (0 is the host)"))
}

fn secret(s: &str) -> Result<JoinSecret, String> {
    JoinSecret::from_hex(s).map_err(|e| e.to_string())
}

fn fingerprint(s: &str) -> Result<Fingerprint, String> {
    Fingerprint::from_hex(s).map_err(|e| e.to_string())
}

/// A join token's text, checked for form here; the host checks the signature and expiry.
fn token(s: &str) -> Result<String, String> {
    JoinToken::from_text(s).map_err(|e| e.to_string())?;
    Ok(s.trim().to_owned())
}

fn address_or_off(s: &str) -> Result<MetricsAt, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsAt(None));
    }
    address(s).map(|a| MetricsAt(Some(a)))
}

fn room(s: &str) -> Result<RoomId, String> {
    RoomId::new(s).map_err(|e| e.to_string())
}

fn address(s: &str) -> Result<SocketAddr, String> {
    netutil::resolve(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("theta").chain(args.iter().copied()))
    }

    fn refused(args: &[&str]) -> String {
        match parse(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_defaults_and_modes() {
        let Command::Demo(d) = parse(&["demo"]).unwrap().command else {
            panic!("not the demo")
        };
        assert!(!d.in_process);
        assert_eq!((d.clients, d.entities, d.ticks()), (2, 1000, 600));
        assert_eq!(
            (d.rate, d.loss, d.duplicate(), d.reorder()),
            (60.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((d.delay, d.jitter), (Duration::ZERO, Duration::ZERO));
        let Command::Demo(d) = parse(&["demo", "--loss", "0.2", "--reorder", "0"])
            .unwrap()
            .command
        else {
            panic!("not the demo")
        };
        assert_eq!(
            (d.duplicate(), d.reorder()),
            (0.05, 0.0),
            "--loss implies the others"
        );
        let Command::Demo(d) = parse(&["demo", "--delay", "20", "--jitter", "10.5"])
            .unwrap()
            .command
        else {
            panic!("not the demo")
        };
        assert_eq!(d.delay, Duration::from_millis(20));
        assert_eq!(d.jitter, Duration::from_micros(10_500));
        let Command::Demo(d) = parse(&["demo", "--in-process", "--chunk-bytes", "4096"])
            .unwrap()
            .command
        else {
            panic!("not the demo")
        };
        assert!(d.in_process);
        assert_eq!((d.ticks(), d.chunk_bytes()), (120, 4096));
        for (given, fields) in [
            (&["demo"][..], true),
            (&["demo", "--fields", "off"][..], false),
        ] {
            let Command::Demo(d) = parse(given).unwrap().command else {
                panic!("not the demo")
            };
            assert_eq!(d.fields, fields, "{given:?}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_option_and_the_range_named() {
        for (bad, named, range) in [
            (&["demo", "--clients", "0"][..], "--clients", "1..=64"),
            (&["demo", "--loss", "1"][..], "--loss", "0..1"),
            (&["demo", "--rate", "0"][..], "--rate", "0.1..=10000"),
            (&["demo", "--ticks", "x"][..], "--ticks", "invalid digit"),
            (&["demo", "--ticks", "0"][..], "--ticks", "at least 1"),
            (&["demo", "--bogus", "1"][..], "--bogus", ""),
            (&["demo", "--motion", "wobbly"][..], "--motion", "teleport"),
            (
                &["demo", "--fields", "maybe"][..],
                "--fields",
                "neither on nor off",
            ),
            (
                &["demo", "--move-percent", "101"][..],
                "--move-percent",
                "0..=100",
            ),
            (&["demo", "--jitter=-1"][..], "--jitter", "milliseconds"),
            (&["demo", "--delay", "60001"][..], "--delay", "0..=60000"),
            (&["demo", "--duplicate", "2"][..], "--duplicate", "0..=1"),
            (
                &["demo", "--in-process", "--clients", "3"][..],
                "--clients",
                "--in-process",
            ),
            (
                &["demo", "--chunk-bytes", "9"][..],
                "--chunk-bytes",
                "--in-process",
            ),
            (&["host"][..], "--bind", "required"),
            (
                &["host", "--bind", "127.0.0.1:1", "--linger=-1"][..],
                "--linger",
                "0..=3600",
            ),
            (
                &["token", "--secret", "zz", "--peer", "1"][..],
                "--secret",
                "",
            ),
            (
                &["token", "--secret", &"11".repeat(32), "--peer", "0"][..],
                "--peer",
                "1..=65535",
            ),
            (
                &["token", "--secret", &"11".repeat(32), "--peer", "70000"][..],
                "--peer",
                "1..=65535",
            ),
            (
                &[
                    "token",
                    "--secret",
                    &"11".repeat(32),
                    "--peer",
                    "1",
                    "--ttl",
                    "0",
                ][..],
                "--ttl",
                "at least 1",
            ),
            (
                &["token", "--secret", &"11".repeat(32)][..],
                "--peer",
                "required",
            ),
            (&["bench", "--batches", "0"][..], "--batches", "at least 1"),
            (
                &["bench", "interest", "--radius", "0"][..],
                "--radius",
                "0.01..=1000000",
            ),
            (
                &["bench", "interest", "--clients", "65"][..],
                "--clients",
                "1..=64",
            ),
            (
                &["bench", "interest", "--seconds", "0"][..],
                "--seconds",
                "0.02..=3600",
            ),
            (
                &["bench", "interest", "--walk=-1"][..],
                "--walk",
                "metres per second",
            ),
            (
                &["bench", "--millis", "5", "interest"][..],
                "--millis",
                "interest",
            ),
            (
                &["bench", "clients", "--clients", "8,65"][..],
                "--clients",
                "1..=64",
            ),
            (
                &["bench", "clients", "--warmup=-1"][..],
                "--warmup",
                "0..=600",
            ),
            (
                &["bench", "clients", "--avatars", "sometimes"][..],
                "--avatars",
                "both",
            ),
        ] {
            let err = refused(bad);
            assert!(err.contains(named) && err.contains(range), "{bad:?}: {err}");
        }
    }

    #[test]
    fn bench_runs_its_default_figures_or_the_interest_bench() {
        let Command::Bench(b) = parse(&["bench"]).unwrap().command else {
            panic!("not the bench")
        };
        assert!(b.what.is_none());
        let Command::Bench(b) = parse(&["bench", "interest"]).unwrap().command else {
            panic!("not the bench")
        };
        let Some(BenchCommand::Interest(i)) = b.what else {
            panic!("not the interest bench")
        };
        assert_eq!((i.clients, i.objects, i.seed), (16, 10_000, 1));
        assert_eq!(
            (i.moving_percent, i.seconds, i.radius, i.walk),
            (1.0, 5.0, 20.0, 1.0)
        );
        let Command::Bench(b) = parse(&[
            "bench",
            "interest",
            "--clients",
            "4",
            "--objects",
            "2000",
            "--moving-percent",
            "2.5",
            "--seconds",
            "1",
            "--radius",
            "8",
            "--walk",
            "0",
        ])
        .unwrap()
        .command
        else {
            panic!("not the bench")
        };
        let Some(BenchCommand::Interest(i)) = b.what else {
            panic!("not the interest bench")
        };
        assert_eq!((i.clients, i.objects), (4, 2000));
        assert_eq!(
            (i.moving_percent, i.seconds, i.radius, i.walk),
            (2.5, 1.0, 8.0, 0.0)
        );
    }

    #[test]
    fn bench_clients_defaults_and_lists() {
        let Command::Bench(b) = parse(&["bench", "clients"]).unwrap().command else {
            panic!("not the bench")
        };
        let Some(BenchCommand::Clients(c)) = b.what else {
            panic!("not the clients bench")
        };
        assert_eq!(c.clients, vec![8, 16, 32]);
        assert_eq!((c.seconds, c.warmup, c.processes), (10.0, 3.0, 4));
        assert_eq!((c.entities, c.move_percent), (1000, 10.0));
        assert_eq!((c.object_rate, c.avatar_rate), (60.0, 90.0));
        assert_eq!(c.avatars.cases(), &[true, false]);
        let Command::Bench(b) = parse(&[
            "bench",
            "clients",
            "--clients",
            "2,4",
            "--avatars",
            "off",
            "--seconds",
            "2",
        ])
        .unwrap()
        .command
        else {
            panic!("not the bench")
        };
        let Some(BenchCommand::Clients(c)) = b.what else {
            panic!("not the clients bench")
        };
        assert_eq!((c.clients, c.seconds), (vec![2, 4], 2.0));
        assert_eq!(c.avatars.cases(), &[false]);
    }

    #[test]
    fn bench_rooms_defaults() {
        let Command::Bench(b) = parse(&["bench", "rooms"]).unwrap().command else {
            panic!("not the bench")
        };
        let Some(BenchCommand::Rooms(r)) = b.what else {
            panic!("not the rooms bench")
        };
        assert_eq!((r.rooms, r.clients_per_room, r.objects), (50, 4, 200));
        assert_eq!(
            (r.object_rate, r.avatar_rate, r.server_rate),
            (60.0, 90.0, 60.0)
        );
        assert_eq!(r.avatars.cases(), &[true]);
        assert_eq!((r.seconds, r.warmup, r.processes), (10.0, 3.0, 4));
    }

    #[test]
    fn join_takes_several_tokens() {
        use theta_net::net::token::try_mint;
        let fp = "ab".repeat(32);
        let secret = JoinSecret::from_bytes([7; 32]);
        let token = |peer| {
            try_mint(&secret, peer, netutil::unix_now() + 60, None)
                .unwrap()
                .to_text()
        };
        let (a, b) = (token(1), token(2));
        let Command::Join(j) = parse(&[
            "join",
            "127.0.0.1:4433",
            "--fingerprint",
            &fp,
            "--token",
            &a,
            "--token",
            &b,
            "--avatar",
        ])
        .unwrap()
        .command
        else {
            panic!("not join")
        };
        assert_eq!(j.tokens, vec![a.clone(), b]);
        assert!(j.avatar);
        assert_eq!(j.own_objects, None, "no objects unless asked");
        let base = [
            "join",
            "127.0.0.1:4433",
            "--fingerprint",
            &fp,
            "--token",
            &a,
        ];
        let with = |extra: &[&str]| -> Result<Cli, clap::Error> {
            parse(&base.iter().chain(extra).copied().collect::<Vec<_>>())
        };
        let Command::Join(j) = with(&["--own-objects", "200"]).unwrap().command else {
            panic!("not join")
        };
        assert_eq!(
            (j.own_objects, j.move_percent, j.object_rate),
            (Some(200), 10.0, 60.0)
        );
        let err = match with(&["--move-percent", "5"]) {
            Ok(_) => panic!("--move-percent without --own-objects was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("--own-objects"), "{err}");
        assert!(with(&["--own-objects", "0"]).is_err());
        let err = refused(&["join", "127.0.0.1:1", "--fingerprint", &fp]);
        assert!(err.contains("--token"), "{err}");
    }

    #[test]
    fn join_checks_address_fingerprint_and_token() {
        use theta_net::net::token::try_mint;
        let fp = "ab".repeat(32);
        let secret = JoinSecret::from_bytes([7; 32]);
        let token = try_mint(&secret, 3, netutil::unix_now() + 60, None)
            .unwrap()
            .to_text();
        let Command::Join(j) = parse(&[
            "join",
            "127.0.0.1:4433",
            "--fingerprint",
            &fp,
            "--token",
            &token,
            "--ticks",
            "5",
        ])
        .unwrap()
        .command
        else {
            panic!("not join")
        };
        assert_eq!(j.fingerprint.to_hex(), fp);
        assert_eq!(j.ticks, Some(5));
        assert_eq!(j.addr, "127.0.0.1:4433".parse().unwrap());
        let err = refused(&["join", "--fingerprint", &fp, "--token", &token]);
        assert!(err.contains("ADDR"), "{err}");
        let err = refused(&[
            "join",
            "127.0.0.1:1",
            "--fingerprint",
            "xyz",
            "--token",
            &token,
        ]);
        assert!(err.contains("--fingerprint"), "{err}");
        let err = refused(&["join", "127.0.0.1:1", "--fingerprint", &fp, "--token", "00"]);
        assert!(err.contains("--token"), "{err}");
        let err = refused(&[
            "join",
            "127.0.0.1:notaport",
            "--fingerprint",
            &fp,
            "--token",
            &token,
        ]);
        assert!(err.contains("notaport"), "{err}");
    }

    #[test]
    fn help_is_not_an_error() {
        for args in [
            &["--help"][..],
            &["demo", "--help"],
            &["host", "-h"],
            &["join", "--help"],
            &["bench", "interest", "--help"],
        ] {
            let err = parse(args).err().expect("help stops the parse");
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(err.exit_code(), 0, "{args:?}");
        }
        assert!(refused(&["demo", "--nope"]).contains("--nope"));
        assert_eq!(parse(&["demo", "--nope"]).err().unwrap().exit_code(), 2);
    }
}
