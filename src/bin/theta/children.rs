//! The child processes of `theta bench clients` and `theta bench rooms`: this same binary
//! started as `theta host` (or `theta serve`) and `theta join`, their output lines gathered
//! from reader threads into one channel, their CPU time read from `/proc/PID/stat` and
//! their resident memory from `/proc/PID/status`, and every one of them killed and reaped
//! when the owner is dropped (on success, on an error and on Ctrl-C alike).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Units of utime and stime in `/proc/PID/stat`: USER_HZ, 100 on every Linux architecture
/// this tool builds for (the kernel fixes it for user space, whatever its own tick).
const USER_HZ: f64 = 100.0;
/// Lines of each child's output kept for an error message.
const KEEP_LINES: usize = 12;

/// What a child printed, or the end of one of its outputs.
enum Output {
    Line { child: usize, text: String },
    Closed,
}

/// The child processes of one run; dropping it kills and reaps the ones still running.
pub struct Children {
    procs: Vec<Child>,
    names: Vec<String>,
    /// Standard input of the host (child 0); dropping it ends the host's changes.
    host_stdin: Option<ChildStdin>,
    tx: Sender<Output>,
    rx: Receiver<Output>,
    /// The last lines of each child (stdout and stderr), for error messages.
    tails: Vec<VecDeque<String>>,
}

impl Children {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Children {
            procs: Vec::new(),
            names: Vec::new(),
            host_stdin: None,
            tx,
            rx,
            tails: Vec::new(),
        }
    }

    /// Starts `theta ARGS` (this binary) with its outputs read by two threads; the first
    /// child started gets a piped standard input (the host).
    pub fn spawn(&mut self, name: String, args: &[String]) -> Result<u32, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to start the {name}: {e}"))?;
        let first = self.procs.is_empty();
        let mut child = Command::new(exe)
            .args(args)
            .stdin(if first { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let index = self.procs.len();
        if first {
            self.host_stdin = child.stdin.take();
        }
        if let Some(out) = child.stdout.take() {
            self.read(index, out);
        }
        if let Some(err) = child.stderr.take() {
            self.read(index, err);
        }
        let pid = child.id();
        self.procs.push(child);
        self.names.push(name);
        self.tails.push(VecDeque::new());
        Ok(pid)
    }

    fn read(&self, child: usize, from: impl Read + Send + 'static) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(text) = line else { break };
                if tx.send(Output::Line { child, text }).is_err() {
                    return;
                }
            }
            let _ = tx.send(Output::Closed);
        });
    }

    /// The next line of any child, waiting until `deadline` at most.
    pub fn next(&mut self, deadline: Instant) -> Option<(usize, String)> {
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Output::Line { child, text }) => {
                    if let Some(tail) = self.tails.get_mut(child) {
                        if tail.len() == KEEP_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(text.clone());
                    }
                    return Some((child, text));
                }
                Ok(Output::Closed) => {}
                // Disconnected cannot happen while `self.tx` lives.
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The first child that exited, with its status.
    pub fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        self.procs
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)))
    }

    /// True when every child exited; the failures among them, by name.
    pub fn all_exited(&mut self) -> (bool, Vec<String>) {
        let mut all = true;
        let mut failed = Vec::new();
        for (i, c) in self.procs.iter_mut().enumerate() {
            match c.try_wait() {
                Ok(Some(status)) if !status.success() => {
                    failed.push(format!("the {} exited with {status}", self.names[i]))
                }
                Ok(Some(_)) => {}
                _ => all = false,
            }
        }
        (all, failed)
    }

    /// A child's name and last lines, for an error message.
    pub fn describe(&self, child: usize) -> String {
        let tail: Vec<&str> = self.tails[child].iter().map(String::as_str).collect();
        format!(
            "{}; its last lines:\n    {}",
            self.names[child],
            tail.join("\n    ")
        )
    }

    /// Closes the host's standard input: with `--control-stdin` it stops changing the
    /// scene, lingers and shuts down.
    pub fn close_host_input(&mut self) {
        self.host_stdin = None;
    }

    /// Asks the host for a mark line.
    pub fn mark(&mut self) -> Result<(), String> {
        let stdin = self
            .host_stdin
            .as_mut()
            .ok_or("the host's input is closed")?;
        stdin
            .write_all(b"mark\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send the host a mark: {e}"))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.host_stdin = None;
        for child in &mut self.procs {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Utime + stime of process `pid`, in seconds (every thread of it).
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path} (this bench needs Linux's /proc): {e}"))?;
    parse_cpu(&text).ok_or_else(|| format!("cannot read the CPU times in {path}"))
}

/// Utime + stime from the text of `/proc/PID/stat`, in seconds. The command name (field 2)
/// may hold spaces and parentheses, so the fields are counted after its last `)`: utime
/// and stime are fields 14 and 15.
fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident memory of process `pid` (`VmRSS` in `/proc/PID/status`), in bytes.
pub fn resident_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path} (this bench needs Linux's /proc): {e}"))?;
    parse_rss(&text).ok_or_else(|| format!("cannot read VmRSS in {path}"))
}

/// `VmRSS:   1234 kB` from the text of `/proc/PID/status`, in bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib * 1024)
}

/// A measuring run that reads its children's output lines (`bench clients`, `bench rooms`).
pub trait Watched {
    /// The children.
    fn kids(&mut self) -> &mut Children;
    /// The case, to start error messages with.
    fn label(&self) -> &str;
    /// One line a child printed.
    fn take(&mut self, child: usize, line: &str);
    /// Why the run has failed already (a client disconnected...), if it has.
    fn failure(&self) -> Option<String>;
    /// Whether a child exiting, or a failure, ends the run now (false once its orderly end
    /// began).
    fn watching(&self) -> bool {
        true
    }

    /// Takes the children's lines until `deadline` or until `done` holds; fails on a child
    /// that exits early, on [`Watched::failure`], and on Ctrl-C.
    fn pump(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, String>
    where
        Self: Sized,
    {
        loop {
            if done(self) {
                return Ok(true);
            }
            if crate::interrupt::requested() {
                return Err("interrupted".into());
            }
            if self.watching() {
                if let Some((child, status)) = self.kids().exited() {
                    // Its last words may still be in the pipe.
                    let grace = Instant::now() + Duration::from_millis(200);
                    while let Some((c, line)) = self.kids().next(grace) {
                        self.take(c, &line);
                    }
                    let child = self.kids().describe(child);
                    return Err(format!(
                        "{}: the {child} exited early ({status})",
                        self.label()
                    ));
                }
                if let Some(reason) = self.failure() {
                    return Err(format!("{}: {reason}", self.label()));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let step = (now + Duration::from_millis(100)).min(deadline);
            if let Some((child, line)) = self.kids().next(step) {
                self.take(child, &line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis; utime 250, stime 50 (in USER_HZ).
        let stat = "4242 (theta (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert_eq!(parse_cpu("4242 (theta) S 1"), None);
        assert_eq!(parse_cpu("no parenthesis"), None);
        let own = cpu_seconds(std::process::id()).expect("this process's own stat");
        assert!(own >= 0.0);
    }

    #[test]
    fn resident_memory_is_read_from_vmrss() {
        let status = "Name:\ttheta\nVmPeak:\t  9000 kB\nVmRSS:\t  2048 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(2048 * 1024));
        assert_eq!(parse_rss("Name:\ttheta\n"), None);
        assert_eq!(parse_rss("VmRSS:\t12 pages\n"), None);
        let own = resident_bytes(std::process::id()).expect("this process's own status");
        assert!(own > 0);
    }
}
