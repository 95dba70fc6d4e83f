//! A hostile binary cache: an HTTP/1.1 proxy on loopback in front of a real server
//! (nginx) that answers chosen requests itself — with an endless or oversized body, by
//! dribbling bytes, or not at all — and forwards the rest. Every loop here is bounded in
//! bytes and time, and each connection ends when the client hangs up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to answer one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Forward to the real server.
    Pass,
    /// 200 with a body of `len` bytes (JSON-looking text), announcing its length or not
    /// (then the body ends when the connection closes).
    Huge { len: u64, announce: bool },
    /// 200 announcing `len` bytes, then one byte every `every` (for at most 120 s).
    Dribble { len: u64, every: Duration },
    /// Accept the request and answer nothing for 120 s.
    Stall,
    /// The real answer without its `Content-Length`, followed by `len` zero bytes (the
    /// body ends when the connection closes).
    Trailing { len: u64 },
}

/// The proxy. `sent` counts the body bytes written by hostile answers (what the client
/// took before hanging up, plus what the kernel buffered).
pub struct HostileProxy {
    pub port: u16,
    pub sent: Arc<AtomicU64>,
    pub hostile_requests: Arc<Mutex<Vec<String>>>,
}

impl HostileProxy {
    pub fn start(upstream: u16, rule: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let sent = Arc::new(AtomicU64::new(0));
        let hostile_requests = Arc::new(Mutex::new(Vec::new()));
        let rule = Arc::new(rule);
        let (s, h) = (sent.clone(), hostile_requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (rule, s, h) = (rule.clone(), s.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = connection(conn, upstream, &*rule, &s, &h);
                });
            }
        });
        HostileProxy {
            port,
            sent,
            hostile_requests,
        }
    }

    pub fn url(&self, sub: &str) -> String {
        format!("http://127.0.0.1:{}/{sub}", self.port)
    }

    pub fn hostile(&self) -> Vec<String> {
        self.hostile_requests.lock().unwrap().clone()
    }
}

/// Read one request head (and a Content-Length body); `None` when the client is done.
fn request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    head.extend_from_slice(&body);
    let text = String::from_utf8_lossy(&head).into_owned();
    Ok(Some((text, head)))
}

fn connection(
    client: TcpStream,
    upstream: u16,
    rule: &dyn Fn(&str) -> Answer,
    sent: &AtomicU64,
    hostile: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    while let Some((text, raw)) = request(&mut reader)? {
        let path = text.split(' ').nth(1).unwrap_or("").to_string();
        let answer = rule(&path);
        if !matches!(answer, Answer::Pass | Answer::Trailing { .. }) {
            hostile.lock().unwrap().push(path.clone());
            return answer_hostile(&mut client, answer, sent);
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        up.write_all(&raw)?;
        let mut response = Vec::new();
        up.read_to_end(&mut response)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(response.len());
        let head = String::from_utf8_lossy(&response[..split])
            .replace("Connection: close\r\n", "Connection: keep-alive\r\n");
        if let Answer::Trailing { len } = answer {
            hostile.lock().unwrap().push(path.clone());
            let head: String = head
                .split_inclusive("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
                .collect::<String>()
                .replace("Connection: keep-alive\r\n", "Connection: close\r\n");
            client.write_all(head.as_bytes())?;
            client.write_all(&response[split..])?;
            return write_zeros(&mut client, len, sent);
        }
        client.write_all(head.as_bytes())?;
        client.write_all(&response[split..])?;
        client.flush()?;
    }
    Ok(())
}

fn write_zeros(client: &mut TcpStream, len: u64, sent: &AtomicU64) -> std::io::Result<()> {
    let started = Instant::now();
    let chunk = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 && started.elapsed() < Duration::from_secs(120) {
        let n = left.min(chunk.len() as u64) as usize;
        client.write_all(&chunk[..n])?;
        sent.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    Ok(())
}

fn answer_hostile(client: &mut TcpStream, answer: Answer, sent: &AtomicU64) -> std::io::Result<()> {
    let started = Instant::now();
    let limit = Duration::from_secs(120);
    match answer {
        Answer::Pass | Answer::Trailing { .. } => Ok(()),
        Answer::Stall => {
            // Hold the connection open without a byte until the client gives up.
            let mut buf = [0u8; 1];
            client.set_read_timeout(Some(limit))?;
            let _ = client.read(&mut buf);
            Ok(())
        }
        Answer::Huge { len, announce } => {
            let length = if announce {
                format!("Content-Length: {len}\r\n")
            } else {
                String::new()
            };
            write!(
                client,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
            )?;
            let prefix = b"{\"version\":1,\"path\":\"";
            client.write_all(prefix)?;
            let chunk = vec![b'a'; 64 << 10];
            let mut left = len.saturating_sub(prefix.len() as u64);
            while left > 0 && started.elapsed() < limit {
                let n = left.min(chunk.len() as u64) as usize;
                client.write_all(&chunk[..n])?;
                sent.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
            }
            Ok(())
        }
        Answer::Dribble { len, every } => {
            write!(
                client,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )?;
            client.flush()?;
            for _ in 0..len {
                if started.elapsed() > limit {
                    break;
                }
                std::thread::sleep(every);
                client.write_all(b" ")?;
                client.flush()?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    }
}

/// Run `cmd` to completion, sampling the peak resident memory of its process (`VmHWM`
/// in `/proc/<pid>/status`, which only grows) every 5 ms. Returns the output and the
/// peak in bytes.
pub fn run_measuring_rss(cmd: &mut std::process::Command) -> (std::process::Output, u64) {
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("a directory for the output");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start cmod");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait().expect("wait for cmod") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = std::process::Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    };
    (output, peak)
}
