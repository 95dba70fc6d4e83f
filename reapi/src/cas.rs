//! The content-addressable storage: which blobs the server lacks, uploads (batched, or streamed
//! through ByteStream `Write` when large) and downloads (batched, or ByteStream `Read`), every
//! downloaded blob verified against its digest.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_stream::wrappers::ReceiverStream;

use crate::client::{Client, MAX_MESSAGE};
use crate::digest::{verify, Digest, DigestBuilder};
use crate::error::{Error, Result};
use crate::proto::build::bazel::remote::execution::v2 as re;
use crate::proto::google::bytestream as bs;

/// Digests per `FindMissingBlobs` call (about 100 bytes each, far below the message limit).
const FIND_MISSING_CHUNK: usize = 8192;
/// Bytes per ByteStream message.
const STREAM_CHUNK: usize = 1024 * 1024;
/// Room counted for each blob's framing in a batch (digest, status, field tags).
pub(crate) const PER_BLOB_OVERHEAD: u64 = 256;

/// Where the content of a blob to upload is.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// In memory.
    Bytes(Vec<u8>),
    /// In a file, read when uploaded (and checked against the digest as it is read).
    File(PathBuf),
}

/// A blob to upload: its digest and where its content is.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The content's digest.
    pub digest: Digest,
    /// The content.
    pub source: BlobSource,
}

impl Blob {
    /// A blob held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: Digest::of_bytes(&bytes),
            source: BlobSource::Bytes(bytes),
        }
    }

    /// A blob read from `path` (digested now, streamed when uploaded).
    pub fn from_file(path: &Path) -> Result<Blob> {
        Ok(Blob {
            digest: Digest::of_file(path)?,
            source: BlobSource::File(path.to_path_buf()),
        })
    }

    /// The content as a reader.
    fn open(&self) -> Result<Box<dyn Read + Send>> {
        match &self.source {
            BlobSource::Bytes(b) => Ok(Box::new(std::io::Cursor::new(b.clone()))),
            BlobSource::File(p) => Ok(Box::new(File::open(p).map_err(|e| Error::io(p, e))?)),
        }
    }

    /// The whole content, checked against the digest.
    fn read_verified(&self) -> Result<Vec<u8>> {
        let bytes = match &self.source {
            BlobSource::Bytes(b) => b.clone(),
            BlobSource::File(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
        };
        verify(&self.describe(), &self.digest, &bytes)?;
        Ok(bytes)
    }

    fn describe(&self) -> String {
        match &self.source {
            BlobSource::Bytes(_) => format!("blob {} to upload", self.digest),
            BlobSource::File(p) => format!("{} (changed since it was digested?)", p.display()),
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Blobs sent.
    pub blobs_uploaded: usize,
    /// Bytes sent (blob contents).
    pub bytes_uploaded: u64,
    /// Blobs the server already had (not sent).
    pub blobs_present: usize,
}

impl Client {
    fn cas(
        &self,
    ) -> re::content_addressable_storage_client::ContentAddressableStorageClient<
        tonic::transport::Channel,
    > {
        re::content_addressable_storage_client::ContentAddressableStorageClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn bytestream(&self) -> bs::byte_stream_client::ByteStreamClient<tonic::transport::Channel> {
        bs::byte_stream_client::ByteStreamClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
    }

    /// The blobs among `digests` the server does not have (each once; the empty blob is never
    /// missing).
    pub fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut unique: Vec<Digest> = digests.iter().copied().filter(|d| d.size() > 0).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut missing = Vec::new();
        for chunk in unique.chunks(FIND_MISSING_CHUNK) {
            let request = self.request(re::FindMissingBlobsRequest {
                instance_name: self.instance_name().to_string(),
                blob_digests: chunk.iter().map(Digest::to_proto).collect(),
                digest_function: re::digest_function::Value::Sha256 as i32,
            });
            let answer = self
                .block_on(self.cas().find_missing_blobs(request))
                .map_err(|s| self.status_error("FindMissingBlobs", s))?
                .into_inner();
            for d in &answer.missing_blob_digests {
                missing.push(Digest::from_proto(d)?);
            }
        }
        Ok(missing)
    }

    /// Uploads the blobs the server lacks: small ones together in `BatchUpdateBlobs` calls up
    /// to the server's batch size, larger ones streamed through ByteStream `Write`.
    pub fn upload(&self, blobs: &[Blob]) -> Result<UploadStats> {
        let mut by_digest: BTreeMap<Digest, &Blob> = BTreeMap::new();
        for b in blobs.iter().filter(|b| b.digest.size() > 0) {
            by_digest.entry(b.digest).or_insert(b);
        }
        let missing = self.find_missing(&by_digest.keys().copied().collect::<Vec<_>>())?;
        let mut stats = UploadStats {
            blobs_present: by_digest.len() - missing.len(),
            ..UploadStats::default()
        };
        let limit = self.batch_limit()?;
        let mut batch: Vec<&Blob> = Vec::new();
        let mut batch_size = 0;
        for digest in &missing {
            let blob = by_digest.get(digest).copied().ok_or_else(|| {
                self.protocol_error(format!("FindMissingBlobs named {digest}, never asked for"))
            })?;
            let cost = digest.size() + PER_BLOB_OVERHEAD;
            if cost > limit {
                self.write_stream(blob)?;
            } else {
                if batch_size + cost > limit {
                    self.batch_update(&std::mem::take(&mut batch))?;
                    batch_size = 0;
                }
                batch.push(blob);
                batch_size += cost;
            }
            stats.blobs_uploaded += 1;
            stats.bytes_uploaded += digest.size();
        }
        if !batch.is_empty() {
            self.batch_update(&batch)?;
        }
        Ok(stats)
    }

    /// Uploads one in-memory blob (if the server lacks it) and returns its digest.
    pub fn upload_bytes(&self, bytes: Vec<u8>) -> Result<Digest> {
        let blob = Blob::from_bytes(bytes);
        self.upload(std::slice::from_ref(&blob))?;
        Ok(blob.digest)
    }

    fn batch_update(&self, blobs: &[&Blob]) -> Result<()> {
        let requests = blobs
            .iter()
            .map(|b| {
                Ok(re::batch_update_blobs_request::Request {
                    digest: Some(b.digest.to_proto()),
                    data: b.read_verified()?,
                    compressor: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let request = self.request(re::BatchUpdateBlobsRequest {
            instance_name: self.instance_name().to_string(),
            requests,
            digest_function: re::digest_function::Value::Sha256 as i32,
        });
        let answer = self
            .block_on(self.cas().batch_update_blobs(request))
            .map_err(|s| self.status_error("BatchUpdateBlobs", s))?
            .into_inner();
        for r in answer.responses {
            let status = r.status.unwrap_or_default();
            if status.code != 0 {
                let digest = r
                    .digest
                    .map_or_else(String::new, |d| format!("{}/{}", d.hash, d.size_bytes));
                return Err(self.blob_status_error("BatchUpdateBlobs", &digest, status));
            }
        }
        Ok(())
    }

    pub(crate) fn blob_status_error(
        &self,
        call: &str,
        digest: &str,
        status: crate::proto::google::rpc::Status,
    ) -> Error {
        Error::Server {
            url: self.endpoint().url().to_string(),
            call: format!("{call} for blob {digest}"),
            code: tonic::Code::from(status.code),
            message: status.message,
        }
    }

    /// Streams one blob through ByteStream `Write`, chunked; the content is read on a blocking
    /// thread and checked against the digest before the final chunk is sent.
    fn write_stream(&self, blob: &Blob) -> Result<()> {
        let resource = self.upload_resource_name(&blob.digest);
        let reader = blob.open()?;
        let (what, digest) = (blob.describe(), blob.digest);
        let call = format!("ByteStream.Write for blob {digest}");
        self.block_on(async {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let feeder = tokio::task::spawn_blocking(move || {
                feed_chunks(reader, digest, &what, resource, &tx)
            });
            let answer = self
                .bytestream()
                .write(self.request(ReceiverStream::new(rx)))
                .await;
            match feeder.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(self.protocol_error(format!("the upload thread failed: {e}"))),
            }
            let committed = answer
                .map_err(|s| self.status_error(call, s))?
                .into_inner()
                .committed_size;
            // -1: the server already had it and stopped the upload early (REAPI allows both).
            if committed == digest.size() as i64 || committed == -1 {
                Ok(())
            } else {
                Err(self.protocol_error(format!(
                    "ByteStream.Write of {digest} committed {committed} bytes"
                )))
            }
        })
    }

    fn upload_resource_name(&self, digest: &Digest) -> String {
        let resource = format!(
            "uploads/{}/blobs/{}/{}",
            upload_id(),
            digest.hash_hex(),
            digest.size()
        );
        with_instance(self.instance_name(), resource)
    }

    /// Downloads `digests` (each once), small ones batched, large ones through ByteStream
    /// `Read`; every blob is verified before it is returned.
    pub fn download(&self, digests: &[Digest]) -> Result<HashMap<Digest, Vec<u8>>> {
        let mut unique: Vec<Digest> = digests.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let limit = self.batch_limit()?;
        let mut out = HashMap::with_capacity(unique.len());
        let mut batch = Vec::new();
        let mut batch_size = 0;
        for d in unique {
            let cost = d.size() + PER_BLOB_OVERHEAD;
            if d.size() == 0 {
                out.insert(d, Vec::new());
            } else if cost > limit {
                let mut bytes = Vec::with_capacity(usize::try_from(d.size()).unwrap_or(0));
                self.read_stream(&d, &mut bytes)?;
                out.insert(d, bytes);
            } else {
                if batch_size + cost > limit {
                    self.batch_read(&std::mem::take(&mut batch), &mut out)?;
                    batch_size = 0;
                }
                batch.push(d);
                batch_size += cost;
            }
        }
        if !batch.is_empty() {
            self.batch_read(&batch, &mut out)?;
        }
        Ok(out)
    }

    /// Downloads one blob, verified.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut all = self.download(std::slice::from_ref(digest))?;
        all.remove(digest)
            .ok_or_else(|| self.protocol_error(format!("blob {digest} was not returned")))
    }

    fn batch_read(&self, digests: &[Digest], out: &mut HashMap<Digest, Vec<u8>>) -> Result<()> {
        let request = self.request(re::BatchReadBlobsRequest {
            instance_name: self.instance_name().to_string(),
            digests: digests.iter().map(Digest::to_proto).collect(),
            acceptable_compressors: Vec::new(),
            digest_function: re::digest_function::Value::Sha256 as i32,
        });
        let answer = self
            .block_on(self.cas().batch_read_blobs(request))
            .map_err(|s| self.status_error("BatchReadBlobs", s))?
            .into_inner();
        for r in answer.responses {
            let proto = r.digest.unwrap_or_default();
            let status = r.status.unwrap_or_default();
            if status.code != 0 {
                let name = format!("{}/{}", proto.hash, proto.size_bytes);
                return Err(self.blob_status_error("BatchReadBlobs", &name, status));
            }
            let digest = Digest::from_proto(&proto)?;
            if !digests.contains(&digest) {
                return Err(self
                    .protocol_error(format!("BatchReadBlobs returned {digest}, never asked for")));
            }
            verify(&format!("blob {digest} from the server"), &digest, &r.data)?;
            out.insert(digest, r.data);
        }
        match digests.iter().find(|d| !out.contains_key(d)) {
            Some(d) => Err(self.protocol_error(format!("BatchReadBlobs left out {d}"))),
            None => Ok(()),
        }
    }

    /// Streams one blob through ByteStream `Read` into `sink`, verifying it as it arrives.
    fn read_stream(&self, digest: &Digest, sink: &mut dyn Write) -> Result<()> {
        let resource = with_instance(
            self.instance_name(),
            format!("blobs/{}/{}", digest.hash_hex(), digest.size()),
        );
        let call = format!("ByteStream.Read for blob {digest}");
        let what = format!("blob {digest} from the server");
        let mut hasher = DigestBuilder::new();
        self.block_on(async {
            let request = self.request(bs::ReadRequest {
                resource_name: resource,
                read_offset: 0,
                read_limit: 0,
            });
            let mut stream = self
                .bytestream()
                .read(request)
                .await
                .map_err(|s| self.status_error(call.clone(), s))?
                .into_inner();
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|s| self.status_error(call.clone(), s))?
            {
                if hasher.size() + chunk.data.len() as u64 > digest.size() {
                    break;
                }
                hasher.update(&chunk.data);
                sink.write_all(&chunk.data)
                    .map_err(|e| Error::io(&what, e))?;
            }
            Ok::<(), Error>(())
        })?;
        let actual = hasher.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what,
                expected: *digest,
                actual,
            });
        }
        Ok(())
    }

    /// Downloads one blob into the file `path` (replaced atomically once verified), with the
    /// executable bits when `executable`. Large blobs are streamed, never held in memory.
    pub fn download_to_file(&self, digest: &Digest, path: &Path, executable: bool) -> Result<()> {
        let limit = self.batch_limit()?;
        if digest.size() + PER_BLOB_OVERHEAD <= limit {
            let bytes = self.read_blob(digest)?;
            return write_file_atomically(path, executable, |f| {
                f.write_all(&bytes).map_err(|e| Error::io(path, e))
            });
        }
        write_file_atomically(path, executable, |f| {
            let mut w = std::io::BufWriter::new(f);
            self.read_stream(digest, &mut w)?;
            w.flush().map_err(|e| Error::io(path, e))
        })
    }
}

/// Writes `path` through a temporary file beside it, then renames it into place.
pub(crate) fn write_file_atomically(
    path: &Path,
    executable: bool,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.cmod-reapi-{}", upload_id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        fill(&mut file)?;
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads `reader` in chunks into ByteStream `WriteRequest`s; the last one (`finish_write`) is
/// sent only once the content matched `digest`, so a changed file is never committed.
fn feed_chunks(
    mut reader: Box<dyn Read + Send>,
    digest: Digest,
    what: &str,
    resource: String,
    tx: &tokio::sync::mpsc::Sender<bs::WriteRequest>,
) -> Result<()> {
    let mut hasher = DigestBuilder::new();
    let mut resource = Some(resource);
    let mut buf = vec![0u8; STREAM_CHUNK];
    loop {
        let offset = hasher.size();
        let want = usize::try_from((digest.size() - offset).min(STREAM_CHUNK as u64))
            .unwrap_or(STREAM_CHUNK);
        let got = read_full(&mut reader, &mut buf[..want]).map_err(|e| Error::io(what, e))?;
        hasher.update(&buf[..got]);
        let last = got < want || hasher.size() == digest.size();
        if last {
            let mut extra = [0u8; 1];
            let more = read_full(&mut reader, &mut extra).map_err(|e| Error::io(what, e))?;
            let actual = hasher.clone().finish();
            if more > 0 || actual != digest {
                return Err(Error::DigestMismatch {
                    what: what.to_string(),
                    expected: digest,
                    actual,
                });
            }
        }
        let request = bs::WriteRequest {
            resource_name: resource.take().unwrap_or_default(),
            write_offset: offset as i64,
            finish_write: last,
            data: buf[..got].to_vec(),
        };
        if tx.blocking_send(request).is_err() || last {
            // A closed stream: the server answered early; its answer says how it went.
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn with_instance(instance: &str, resource: String) -> String {
    if instance.is_empty() {
        resource
    } else {
        format!("{instance}/{resource}")
    }
}

/// A UUID-shaped (version 4 layout) identifier, unique within this machine: the SHA-256 of
/// the process id, the time and a counter. REAPI asks for a UUID in upload resource names.
fn upload_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&Digest::of_bytes(seed.as_bytes()).hash_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_uuid_shaped_and_distinct() {
        let a = upload_id();
        let b = upload_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4', "{a}");
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
    }

    #[test]
    fn feeding_a_changed_file_fails_before_the_final_chunk() {
        let content = vec![7u8; STREAM_CHUNK + 10];
        let digest = Digest::of_bytes(&content);
        let mut changed = content.clone();
        changed[5] = 8;
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let err = feed_chunks(
            Box::new(std::io::Cursor::new(changed)),
            digest,
            "f",
            "r".into(),
            &tx,
        )
        .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        // Only the first, non-final chunk went out.
        let first = rx.try_recv().unwrap();
        assert!(!first.finish_write);
        assert_eq!(first.resource_name, "r");
        assert!(rx.try_recv().is_err());
        // The right content is sent whole, the last chunk finishing the write.
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        feed_chunks(
            Box::new(std::io::Cursor::new(content)),
            digest,
            "f",
            "r".into(),
            &tx,
        )
        .unwrap();
        let (a, b) = (rx.try_recv().unwrap(), rx.try_recv().unwrap());
        assert_eq!((a.data.len(), b.data.len()), (STREAM_CHUNK, 10));
        assert!(!a.finish_write && b.finish_write);
        assert_eq!(b.write_offset, STREAM_CHUNK as i64);
        assert!(b.resource_name.is_empty());
    }
}
