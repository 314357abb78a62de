//! Load test: 1,000 simulated agents heartbeating and polling against a coffer-server
//! on loopback. Reports requests per second, latency percentiles, errors and the
//! server's peak memory (VmHWM of the server process, which runs as a child so that
//! the figure is the server's alone) and CPU (its busiest second and its average over
//! the run, in cores).
//!
//! ```text
//! cargo run --release -p coffer-server --example load -- --agents 1000 --secs 30
//! cargo run -p coffer-server --example load -- --smoke     # 50 agents, 3 s
//! ```
//! Options: `--agents N` (1000), `--secs S` (30), `--interval-ms M` (1000: each agent
//! heartbeats and polls once per M ms; 0 = as fast as it can), `--poll-wait W` (0),
//! `--presigns P` (0: pre-signed URLs each agent asks for each round, a listing then
//! puts, as a nightly backup burst does).

#[path = "load/driver.rs"]
mod driver;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-child") {
        let dir = args.get(i + 1).ok_or("--serve-child DIR")?;
        return serve_child(dir.into());
    }
    // `--smoke`: 50 agents for 3 seconds, for CI.
    let smoke = args.iter().any(|a| a == "--smoke");
    let agents = arg(&args, "--agents", if smoke { 50 } else { 1000 }) as usize;
    let secs = arg(&args, "--secs", if smoke { 3 } else { 30 });
    let interval = Duration::from_millis(arg(&args, "--interval-ms", 1000));
    let poll_wait = arg(&args, "--poll-wait", 0);
    let presigns = u32::try_from(arg(&args, "--presigns", 0)).unwrap_or(u32::MAX);

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--serve-child")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut parts = line.split_whitespace().skip(1);
    let base = format!(
        "http://{}",
        parts.next().ok_or("no address from the server")?
    );
    let admin = parts
        .next()
        .ok_or("no admin token from the server")?
        .to_owned();
    let pid = child.id();

    let cpu = CpuSampler::start(pid);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let report = runtime.block_on(driver::run(&driver::Options {
        base,
        admin,
        agents,
        duration: Duration::from_secs(secs),
        interval,
        poll_wait,
        presigns,
    }));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    let (peak, rss) = (field("VmHWM:"), field("VmRSS:"));
    let cpu = cpu.stop();
    let _ = child.kill();
    let _ = child.wait();
    let report = report?;
    println!("agents:            {}", report.agents);
    println!(
        "enrolment:         {:.1} s for {} agents over HTTP",
        report.enrol_secs, report.agents
    );
    println!(
        "phase:             {:.1} s, interval {:?}, poll wait {poll_wait} s, {presigns} presigns a round",
        report.elapsed.as_secs_f64(),
        interval
    );
    println!(
        "requests:          {} ({:.0} per second)",
        report.requests, report.rps
    );
    println!(
        "latency:           p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        report.p50_ms, report.p99_ms, report.max_ms
    );
    println!("errors:            {}", report.errors);
    for e in &report.first_errors {
        println!("  e.g. {e}");
    }
    println!("server peak RSS:   {peak} kB (VmHWM; RSS at the end {rss} kB)");
    println!(
        "server CPU:        busiest second {:.2} cores, {:.2} on average over {:.1} s ({:.1} CPU-seconds)",
        cpu.peak_cores, cpu.mean_cores, cpu.wall_secs, cpu.cpu_secs
    );
    if report.errors > 0 {
        return Err(format!("{} errors", report.errors));
    }
    Ok(())
}

/// The server process: binds loopback, prints `READY addr admin-token`, serves.
fn serve_child(dir: std::path::PathBuf) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut config = coffer_server::config::Config::new(
            dir,
            url::Url::parse(&format!("http://{addr}")).map_err(|e| e.to_string())?,
        );
        // One address enrols every simulated agent.
        config.enrol_per_minute = 1_000_000;
        let started = coffer_server::Server::open(config, None).map_err(|e| e.to_string())?;
        let token = started
            .admin_token
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        println!("READY {addr} {token}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        coffer_server::server::serve(listener, started.state, std::future::pending())
            .await
            .map_err(|e| e.to_string())
    })
}

/// Samples a process's CPU time from `/proc/PID/stat` each second on a thread of its
/// own.
struct CpuSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<CpuFigures>,
}

struct CpuFigures {
    peak_cores: f64,
    mean_cores: f64,
    wall_secs: f64,
    cpu_secs: f64,
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

impl CpuSampler {
    fn start(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let begun = std::time::Instant::now();
            let first = cpu_seconds(pid).unwrap_or(0.0);
            let (mut last, mut at, mut peak) = (first, begun, 0.0f64);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1000));
                let Some(now) = cpu_seconds(pid) else { break };
                let t = std::time::Instant::now();
                peak = peak.max((now - last) / t.duration_since(at).as_secs_f64());
                (last, at) = (now, t);
            }
            let wall = at.duration_since(begun).as_secs_f64().max(1e-9);
            CpuFigures {
                peak_cores: peak,
                mean_cores: (last - first) / wall,
                wall_secs: wall,
                cpu_secs: last - first,
            }
        });
        CpuSampler { stop, thread }
    }

    fn stop(self) -> CpuFigures {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(CpuFigures {
            peak_cores: 0.0,
            mean_cores: 0.0,
            wall_secs: 0.0,
            cpu_secs: 0.0,
        })
    }
}
