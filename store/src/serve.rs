//! `cmod store serve --stdio`: the remote side of `ssh://` copies, and the framing both
//! sides speak.
//!
//! **Framing.** Every frame is a little-endian `u32` length and that many bytes. A
//! message is one frame holding a JSON object (at most 16 MiB). An archive is a run of
//! data frames (at most 1 MiB each) ended by an empty frame. A longer frame is refused
//! before it is read, and a frame's bytes are read as they arrive (its announced length
//! is not allocated up front).
//!
//! **Protocol v1.** The client opens with `{"op":"hello","protocol":1}`; the server
//! answers `{"protocol":1,"store_format":"v1"}` (or an error and hangs up). Then, any
//! number of requests, each answered in order (errors as `{"error":...}`):
//!
//! | request | answer |
//! | --- | --- |
//! | `{"op":"missing","paths":[..]}` | `{"missing":[..]}`: the ones the server lacks (one batch) |
//! | `{"op":"infos","paths":[..]}` | `{"infos":[NarInfo..]}` for those it has |
//! | `{"op":"traces","keys":[..]}` | `{"traces":[TraceEntry..]}` for those it has |
//! | `{"op":"get","paths":[..]}` | per path: `{"path","file_hash","file_size"}`, then its archive |
//! | `{"op":"add","info":NarInfo}` + archive | `{"ok":path}` once verified and registered |
//! | `{"op":"add_traces","entries":[..]}` | `{"ok":n}` |
//! | `{"op":"bye"}` | (the server exits) |
//!
//! `add`s may be pipelined: the client streams many before reading the answers. The
//! server verifies every archive like any other untrusted input (member checks, stream
//! hash and size, content hash, store path); a client reaching it through ssh can
//! already write to this store, so signatures are only required with `--require-sigs`.

use std::io::{Read, Write};

use cmod_schema::cache::{ArchiveRef, NarInfo};
use cmod_schema::{ContentHash, StorePath};
use serde_json::{json, Value};

use crate::layout::Store;
use crate::trace::TraceEntry;
use crate::transfer::{receive_one, CopyError, HashingWriter, Trust};

/// The protocol version.
pub const PROTOCOL: u64 = 1;
/// Largest message frame accepted (clients split requests into batches of
/// `limits::SSH_BATCH`, so answers fit easily).
pub const MAX_FRAME: usize = crate::limits::MESSAGE_MAX;
const CHUNK: usize = crate::limits::DATA_FRAME_MAX;

/// Write one frame.
pub fn write_frame(w: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)
}

/// Read one message frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut dyn Read) -> std::io::Result<Option<Vec<u8>>> {
    read_frame_max(r, MAX_FRAME)
}

/// Read one frame of at most `max` bytes; `None` at a clean end of stream.
pub fn read_frame_max(r: &mut dyn Read, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a frame of {n} bytes is larger than the {} allowed",
                crate::limits::show_bytes(max as u64)
            ),
        ));
    }
    // Grown as bytes arrive: a peer that announces much and sends little costs little.
    let mut buf = Vec::with_capacity(n.min(64 << 10));
    r.take(n as u64).read_to_end(&mut buf)?;
    if buf.len() != n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(buf))
}

/// Write a JSON message frame.
pub fn write_msg(w: &mut dyn Write, v: &Value) -> std::io::Result<()> {
    write_frame(w, &serde_json::to_vec(v).map_err(std::io::Error::other)?)
}

/// Read a JSON message frame.
pub fn read_msg(r: &mut dyn Read) -> std::io::Result<Option<Value>> {
    match read_frame(r)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a message is not JSON: {e}"),
            )
        }),
    }
}

/// Stream the file at `path` as data frames and the end frame.
pub fn write_archive(w: &mut dyn Write, path: &std::path::Path) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        write_frame(w, &buf[..n])?;
    }
    write_frame(w, &[])
}

/// Reads the data frames of one archive as a byte stream.
pub struct FrameReader<'a> {
    inner: &'a mut dyn Read,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<'a> FrameReader<'a> {
    /// Read frames from `inner`.
    pub fn new(inner: &'a mut dyn Read) -> Self {
        FrameReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Skip to the end frame.
    pub fn drain(&mut self) -> std::io::Result<()> {
        std::io::copy(self, &mut std::io::sink()).map(|_| ())
    }
}

impl Read for FrameReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match read_frame_max(self.inner, CHUNK)? {
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Some(b) if b.is_empty() => self.done = true,
                Some(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Pack a valid path into a temporary file; returns the file and its archive reference.
pub fn pack_to_temp(
    store: &Store,
    p: &StorePath,
) -> Result<(std::path::PathBuf, ArchiveRef), CopyError> {
    let tmp = store.temp_path("nar");
    let io =
        |e: std::io::Error| CopyError::Store(crate::StoreError::io("packing", store.path_of(p), e));
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let packed = crate::archive::pack(
        &store.path_of(p),
        HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file)),
        3,
        2,
    );
    let w = match packed {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(std::io::Error::other(e.to_string())));
        }
    };
    let (file_hash, file_size) = w.digest();
    if let Err(e) = w.inner.into_inner().map_err(|e| e.into_error()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok((
        tmp,
        ArchiveRef {
            file: String::new(),
            file_hash,
            file_size,
            compression: "tar+zstd".into(),
        },
    ))
}

/// Metadata of a valid path for the wire (the archive reference follows with `get`).
pub fn nar_info(store: &Store, p: &StorePath) -> Result<NarInfo, CopyError> {
    let archive = ArchiveRef {
        file: String::new(),
        file_hash: ContentHash([0; 32]),
        file_size: 0,
        compression: "tar+zstd".into(),
    };
    Ok(NarInfo::of(store.path_info(p)?, archive))
}

fn field<T: serde::de::DeserializeOwned>(msg: &Value, name: &str) -> Result<T, String> {
    serde_json::from_value(msg.get(name).cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("bad `{name}`: {e}"))
}

/// Serve the protocol on `input`/`output` until the client says `bye` or hangs up.
/// `trust`, when given, is required of every added path and trace entry.
pub fn serve(
    store: &Store,
    input: &mut dyn Read,
    output: &mut dyn Write,
    trust: Option<&Trust>,
) -> std::io::Result<()> {
    if !handshake(input, output)? {
        return Ok(());
    }
    let _gc = store
        .gc_guard()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    while let Some(msg) = read_msg(input)? {
        let reply = match msg["op"].as_str().unwrap_or_default() {
            "bye" => return Ok(()),
            "missing" => field::<Vec<StorePath>>(&msg, "paths").map(|ps| {
                let missing: Vec<&StorePath> = ps.iter().filter(|p| !store.is_valid(p)).collect();
                json!({ "missing": missing })
            }),
            "infos" => field::<Vec<StorePath>>(&msg, "paths").and_then(|ps| infos(store, &ps)),
            "traces" => field::<Vec<ContentHash>>(&msg, "keys").map(|ks| {
                let t: Vec<TraceEntry> = ks.iter().filter_map(|k| store.trace_lookup(k)).collect();
                json!({ "traces": t })
            }),
            "get" => match field::<Vec<StorePath>>(&msg, "paths") {
                Ok(ps) => {
                    send_archives(store, &ps, output)?;
                    continue;
                }
                Err(e) => Err(e),
            },
            "add" => add(store, &msg, input, trust)?,
            "add_traces" => field::<Vec<TraceEntry>>(&msg, "entries")
                .and_then(|es| add_traces(store, &es, trust)),
            other => Err(format!("unknown request `{other}`")),
        };
        let v = reply.unwrap_or_else(|e| json!({ "error": e }));
        write_msg(output, &v)?;
        output.flush()?;
    }
    Ok(())
}

/// Answer the client's `hello`; false (after saying why) when it speaks another
/// protocol, or hung up first.
fn handshake(input: &mut dyn Read, output: &mut dyn Write) -> std::io::Result<bool> {
    let Some(hello) = read_msg(input)? else {
        return Ok(false);
    };
    if hello["op"] != "hello" || hello["protocol"].as_u64() != Some(PROTOCOL) {
        write_msg(
            output,
            &json!({"error": format!("unsupported protocol (this server speaks {PROTOCOL}): {hello}")}),
        )?;
        output.flush()?;
        return Ok(false);
    }
    write_msg(
        output,
        &json!({"protocol": PROTOCOL, "store_format": crate::layout::FORMAT}),
    )?;
    output.flush()?;
    Ok(true)
}

/// `infos`: the metadata of those of `paths` that are valid here.
fn infos(store: &Store, paths: &[StorePath]) -> Result<Value, String> {
    let infos: Result<Vec<NarInfo>, CopyError> = paths
        .iter()
        .filter(|p| store.is_valid(p))
        .map(|p| nar_info(store, p))
        .collect();
    infos
        .map(|i| json!({ "infos": i }))
        .map_err(|e| e.to_string())
}

/// `get`: one header and archive per path (or an error message for one that cannot be
/// sent), then a flush.
fn send_archives(
    store: &Store,
    paths: &[StorePath],
    output: &mut dyn Write,
) -> std::io::Result<()> {
    for p in paths {
        match store.is_valid(p).then(|| pack_to_temp(store, p)) {
            Some(Ok((tmp, a))) => {
                let r = write_msg(
                    output,
                    &json!({"path": p, "file_hash": a.file_hash, "file_size": a.file_size}),
                )
                .and_then(|_| write_archive(output, &tmp));
                let _ = std::fs::remove_file(&tmp);
                r?;
            }
            Some(Err(e)) => write_msg(output, &json!({"error": e.to_string()}))?,
            None => write_msg(
                output,
                &json!({"error": format!("`{p}` is not valid here"), "missing": p}),
            )?,
        }
    }
    output.flush()
}

/// `add`: receive one path's archive (its frames are always read to the end, so the
/// stream stays in step even when the path is refused).
fn add(
    store: &Store,
    msg: &Value,
    input: &mut dyn Read,
    trust: Option<&Trust>,
) -> std::io::Result<Result<Value, String>> {
    let info = field::<NarInfo>(msg, "info");
    let mut frames = FrameReader::new(input);
    let r = info.and_then(|info| {
        trust
            .map_or(Ok(()), |t| t.check_path("client", &info))
            .and_then(|_| receive_one(store, "client", &info, &mut frames))
            .map(|_| json!({ "ok": info.path }))
            .map_err(|e| e.to_string())
    });
    frames.drain()?;
    Ok(r)
}

/// `add_traces`: record trace entries whose outputs are all here (and trusted, when
/// trust is required).
fn add_traces(
    store: &Store,
    entries: &[TraceEntry],
    trust: Option<&Trust>,
) -> Result<Value, String> {
    for e in entries {
        if let Some(t) = trust {
            t.check_trace("client", e).map_err(|e| e.to_string())?;
        }
        if let Some(p) = e.outputs.values().find(|p| !store.is_valid(p)) {
            return Err(format!(
                "the trace entry of {} names `{p}`, which is not here",
                e.drv
            ));
        }
        store.trace_record(e).map_err(|e| e.to_string())?;
    }
    Ok(json!({ "ok": entries.len() }))
}
